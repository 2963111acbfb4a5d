// Starts s3rver (tests/s3rver) on 127.0.0.1 with a random port and the credentials the test
// chose, prints "listening PORT", then one "request METHOD URL" line per request so the test
// can count origin requests. Exits when stdin closes, so a killed test run leaves no server.
'use strict';
const [modules, directory, accessKeyId, secretAccessKey] = process.argv.slice(2);
const S3rver = require(modules + '/s3rver');
const AWSAccount = require(modules + '/s3rver/lib/models/account');

// Only the test's own key pair is valid: a wrong secret must fail as it would on S3.
AWSAccount.DUMMY_ACCOUNT.revokeAccessKey('S3RVER');
AWSAccount.DUMMY_ACCOUNT.createKeyPair(accessKeyId, secretAccessKey);

const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true, vhostBuckets: false });
server.middleware.unshift(async (ctx, next) => {
  process.stdout.write(`request ${ctx.method} ${ctx.url}\n`);
  await next();
});
server.run().then(
  (address) => process.stdout.write(`listening ${address.port}\n`),
  (err) => { process.stderr.write(`s3rver failed: ${err}\n`); process.exit(1); });

const stop = () => server.close().finally(() => process.exit(0));
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();
