using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace CsiCache.Datasets.Tests;

/// <summary>One request the test origin served.</summary>
internal sealed record OriginRequest(string Method, string Path, long? RangeStart, long? RangeEnd, int Status);

/// <summary>
/// An nginx-like HTTP origin on 127.0.0.1:0 serving a directory: autoindex HTML listings
/// (nginx's layout, exact sizes), strong ETags, Last-Modified, Range (206) and If-Match (412).
/// Every request is recorded so tests can count what reached the origin. It can throttle bodies
/// (to be killed mid-read), require Basic credentials, and be stopped abruptly.
/// </summary>
internal sealed class HttpTestOrigin : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly string _root;
    private int _stopped;

    private HttpTestOrigin(WebApplication app, string root)
    {
        _app = app;
        _root = root;
    }

    public ConcurrentQueue<OriginRequest> Requests { get; } = new();

    /// <summary>Requests as they start (method and path), before they are answered.</summary>
    public ConcurrentQueue<string> Started { get; } = new();

    public Uri BaseUri { get; private set; } = null!;

    /// <summary>Bytes per second for file bodies; 0 = unthrottled.</summary>
    public long ThrottleBytesPerSecond { get; set; }

    /// <summary>When set, requests without this Authorization header get 401.</summary>
    public string? RequiredAuthorization { get; set; }

    public int RequestCount => Requests.Count;

    /// <summary>Ranged GETs of one file (path relative to the root, '/'-separated).</summary>
    public List<OriginRequest> DataRequests(string relativePath)
    {
        // Kestrel's PathString is already unescaped.
        string wanted = "/" + relativePath;
        return Requests.Where(r => r.Method == "GET" && r.RangeStart is not null && r.Path == wanted).ToList();
    }

    public static async Task<HttpTestOrigin> StartAsync(string root)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(o => o.Listen(IPAddress.Loopback, 0));
        WebApplication app = builder.Build();
        var origin = new HttpTestOrigin(app, Path.GetFullPath(root));
        app.Run(origin.HandleAsync);
        await app.StartAsync();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        origin.BaseUri = new Uri(address.TrimEnd('/') + "/");
        return origin;
    }

    /// <summary>Stops at once: open connections are aborted mid-body, new ones refused.</summary>
    public async Task KillAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 0)
        {
            using var now = new CancellationTokenSource();
            await now.CancelAsync();
            try
            {
                await _app.StopAsync(now.Token);
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        await _app.DisposeAsync();
    }

    private async Task HandleAsync(HttpContext context)
    {
        HttpRequest request = context.Request;
        HttpResponse response = context.Response;
        string rawPath = request.Path.Value ?? "/";
        (long? rangeStart, long? rangeEnd) = ParseRange(request.Headers.Range.ToString());
        Started.Enqueue(request.Method + " " + rawPath);
        try
        {
            if (RequiredAuthorization is not null && request.Headers.Authorization.ToString() != RequiredAuthorization)
            {
                response.StatusCode = 401;
                return;
            }
            if (request.Method is not ("GET" or "HEAD"))
            {
                response.StatusCode = 405;
                return;
            }
            string relative = Uri.UnescapeDataString(rawPath.TrimStart('/'));
            if (relative.Split('/').Any(s => s is ".." or "."))
            {
                response.StatusCode = 400;
                return;
            }
            string full = Path.Combine(_root, relative);
            if (Directory.Exists(full))
            {
                if (!rawPath.EndsWith('/'))
                {
                    response.StatusCode = 301;
                    response.Headers.Location = rawPath + "/";
                    return;
                }
                await WriteListingAsync(response, full, rawPath, request.Method == "HEAD");
                return;
            }
            if (!File.Exists(full) || rawPath.EndsWith('/'))
            {
                response.StatusCode = 404;
                return;
            }
            await ServeFileAsync(context, full, rangeStart, rangeEnd);
        }
        finally
        {
            Requests.Enqueue(new OriginRequest(request.Method, rawPath, rangeStart, rangeEnd, response.StatusCode));
        }
    }

    private static async Task WriteListingAsync(HttpResponse response, string directory, string urlPath, bool head)
    {
        var html = new StringBuilder();
        html.Append(CultureInfo.InvariantCulture, $"<html>\r\n<head><title>Index of {urlPath}</title></head>\r\n<body>\r\n<h1>Index of {urlPath}</h1><hr><pre><a href=\"../\">../</a>\n");
        var entries = new DirectoryInfo(directory).EnumerateFileSystemInfos().OrderBy(e => e.Name, StringComparer.Ordinal);
        foreach (FileSystemInfo entry in entries)
        {
            bool isDirectory = entry is DirectoryInfo;
            string name = entry.Name + (isDirectory ? "/" : "");
            string href = Uri.EscapeDataString(entry.Name) + (isDirectory ? "/" : "");
            string date = entry.LastWriteTimeUtc.ToString("dd-MMM-yyyy HH:mm", CultureInfo.InvariantCulture);
            string size = isDirectory ? "-" : ((FileInfo)entry).Length.ToString(CultureInfo.InvariantCulture);
            html.Append(CultureInfo.InvariantCulture, $"<a href=\"{href}\">{WebUtility.HtmlEncode(name)}</a>{new string(' ', Math.Max(1, 51 - name.Length))}{date} {size,19}\n");
        }
        html.Append("</pre><hr></body>\r\n</html>\r\n");
        byte[] body = Encoding.UTF8.GetBytes(html.ToString());
        response.StatusCode = 200;
        response.ContentType = "text/html";
        response.ContentLength = body.Length;
        if (!head)
        {
            await response.Body.WriteAsync(body);
        }
    }

    private async Task ServeFileAsync(HttpContext context, string full, long? rangeStart, long? rangeEnd)
    {
        HttpResponse response = context.Response;
        var info = new FileInfo(full);
        long length = info.Length;
        string etag = $"\"{length:x}-{info.LastWriteTimeUtc.Ticks:x}\"";
        response.Headers.ETag = etag;
        response.Headers.LastModified = info.LastWriteTimeUtc.ToString("R", CultureInfo.InvariantCulture);
        response.Headers.AcceptRanges = "bytes";

        string ifMatch = context.Request.Headers.IfMatch.ToString();
        if (ifMatch.Length > 0 && ifMatch != "*" && !ifMatch.Split(',').Select(s => s.Trim()).Contains(etag))
        {
            response.StatusCode = 412;
            return;
        }

        long start = 0, end = length - 1;
        if (rangeStart is not null)
        {
            start = rangeStart.Value;
            end = Math.Min(rangeEnd ?? length - 1, length - 1);
            if (start >= length)
            {
                response.StatusCode = 416;
                response.Headers.ContentRange = $"bytes */{length}";
                return;
            }
            response.StatusCode = 206;
            response.Headers.ContentRange = $"bytes {start}-{end}/{length}";
        }
        else
        {
            response.StatusCode = 200;
        }
        long count = Math.Max(0, end - start + 1);
        response.ContentLength = count;
        if (context.Request.Method == "HEAD" || count == 0)
        {
            return;
        }

        await using var file = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16, useAsync: true);
        file.Position = start;
        byte[] buffer = new byte[64 << 10];
        long left = count;
        while (left > 0)
        {
            int n = await file.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, left)), context.RequestAborted);
            if (n == 0)
            {
                break;
            }
            await response.Body.WriteAsync(buffer.AsMemory(0, n), context.RequestAborted);
            await response.Body.FlushAsync(context.RequestAborted);
            left -= n;
            long throttle = ThrottleBytesPerSecond;
            if (throttle > 0)
            {
                await Task.Delay(TimeSpan.FromSeconds((double)n / throttle), context.RequestAborted);
            }
        }
    }

    private static (long? Start, long? End) ParseRange(string header)
    {
        if (!header.StartsWith("bytes=", StringComparison.Ordinal))
        {
            return (null, null);
        }
        string[] parts = header["bytes=".Length..].Split('-');
        if (parts.Length != 2 || !long.TryParse(parts[0], CultureInfo.InvariantCulture, out long start))
        {
            return (null, null);
        }
        return (start, long.TryParse(parts[1], CultureInfo.InvariantCulture, out long end) ? end : null);
    }
}
