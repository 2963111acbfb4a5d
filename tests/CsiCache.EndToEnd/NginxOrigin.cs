using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace CsiCache.EndToEnd;

/// <summary>
/// A real nginx (Debian's, installed by scripts/install-test-deps.sh) serving a directory with
/// <c>autoindex on</c> on 127.0.0.1, in the foreground as our child, with an access log the
/// tests count requests from. Disposing stops it. Its workers run as root because the test
/// directories are private to root (mode 0700).
/// </summary>
internal sealed class NginxOrigin : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _accessLog;

    private NginxOrigin(Process process, string accessLog, Uri baseUri)
    {
        _process = process;
        _accessLog = accessLog;
        BaseUri = baseUri;
    }

    public Uri BaseUri { get; }

    /// <summary>Requests nginx has logged so far (it writes one line per request when it finishes).</summary>
    public int Requests => File.Exists(_accessLog) ? File.ReadLines(_accessLog).Count() : 0;

    public static async Task<NginxOrigin> StartAsync(string root, string workDir)
    {
        var nginx = new[] { "/usr/sbin/nginx", "/usr/bin/nginx" }.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("nginx is not installed: run scripts/install-test-deps.sh (apt-get install nginx)");
        Directory.CreateDirectory(workDir);
        var port = FreePort();
        var accessLog = Path.Combine(workDir, "access.log");
        var config = Path.Combine(workDir, "nginx.conf");
        await File.WriteAllTextAsync(config, $$"""
            user root;
            worker_processes 1;
            daemon off;
            pid {{workDir}}/nginx.pid;
            error_log {{workDir}}/error.log;
            events { }
            http {
                access_log {{accessLog}};
                client_body_temp_path {{workDir}}/body;
                proxy_temp_path {{workDir}}/proxy;
                fastcgi_temp_path {{workDir}}/fastcgi;
                uwsgi_temp_path {{workDir}}/uwsgi;
                scgi_temp_path {{workDir}}/scgi;
                server {
                    listen 127.0.0.1:{{port}};
                    location / { root {{root}}; autoindex on; }
                }
            }
            """);
        var process = Process.Start(new ProcessStartInfo(nginx, ["-c", config, "-p", workDir]) { UseShellExecute = false })!;
        var origin = new NginxOrigin(process, accessLog, new Uri($"http://127.0.0.1:{port}/"));
        using var http = new HttpClient();
        var deadline = DateTime.UtcNow.AddSeconds(15);
        HttpStatusCode? status = null;
        while (status is null && DateTime.UtcNow < deadline && !process.HasExited)
        {
            try
            {
                using var response = await http.GetAsync(origin.BaseUri);
                status = response.StatusCode;
            }
            catch (HttpRequestException)
            {
                await Task.Delay(100);
            }
        }

        if (status == HttpStatusCode.OK)
        {
            return origin;
        }

        await origin.DisposeAsync();
        var errors = Path.Combine(workDir, "error.log");
        throw new InvalidOperationException($"nginx did not serve {root} (status {status?.ToString() ?? "none"}): " +
            (File.Exists(errors) ? await File.ReadAllTextAsync(errors) : "no error log"));
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    private static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}
