'use strict';
// Starts s3rver for CsiCache.Origins.Tests: 127.0.0.1 only, a port the OS picks, data in the
// directory given as the first argument. Prints "LISTENING <port>" once ready, and exits when
// its stdin closes, so a test run that dies never leaves a server behind.
const S3rver = require('s3rver');

const directory = process.argv[2];
if (!directory) {
  console.error('usage: node start.js <data-directory>');
  process.exit(2);
}

const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  directory,
  silent: true,
  // Path-style only: the tests address 127.0.0.1, where virtual-host buckets cannot resolve.
  vhostBuckets: false,
});

server.run().then(
  ({ port }) => {
    process.stdout.write(`LISTENING ${port}\n`);
  },
  err => {
    console.error(`s3rver failed to start: ${err.message}`);
    process.exit(1);
  },
);

process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.resume();
