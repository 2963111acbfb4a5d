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
using Microsoft.Net.Http.Headers;

namespace CsiCache.Cli.Demo;

/// <summary>
/// A small HTTP dataset origin on 127.0.0.1 that behaves like nginx serving a directory with
/// <c>autoindex on</c>: HTML listings of every directory, files with a strong ETag and
/// Last-Modified, Range requests (206, 416), conditional requests (If-Match → 412), HEAD.
/// It counts every request it answers, which is how the demo and the end-to-end tests know,
/// from the origin's side, whether a read went to the origin or came from the node cache.
/// </summary>
internal sealed class HttpDatasetOrigin : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly string _root;
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _log = new();
    private long _requests;
    private long _listings;
    private long _fileRequests;
    private long _bytesRequested;

    private HttpDatasetOrigin(WebApplication app, string root)
    {
        _app = app;
        _root = root;
    }

    /// <summary>http://127.0.0.1:PORT/ — the dataset root.</summary>
    public Uri BaseUri { get; private set; } = null!;

    /// <summary>Every request answered (listings, HEAD, GET, errors).</summary>
    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>Directory listings served.</summary>
    public long Listings => Interlocked.Read(ref _listings);

    /// <summary>HEAD and GET requests for files.</summary>
    public long FileRequests => Interlocked.Read(ref _fileRequests);

    /// <summary>Body bytes asked for by file GETs (the range's length, or the whole file).</summary>
    public long BytesRequested => Interlocked.Read(ref _bytesRequested);

    /// <summary>Every request so far as "METHOD /path [range]", in arrival order: what a test prints when a count is off.</summary>
    public IReadOnlyList<string> RequestLog => [.. _log];

    /// <summary>While set, every request is answered 503, as an origin under maintenance would.</summary>
    public bool Unavailable { get; set; }

    public static async Task<HttpDatasetOrigin> StartAsync(string root, CancellationToken ct)
    {
        var full = Path.GetFullPath(root).TrimEnd('/');
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var origin = new HttpDatasetOrigin(app, full);
        app.Run(origin.HandleAsync);
        await app.StartAsync(ct);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        origin.BaseUri = new Uri(address.TrimEnd('/') + "/");
        return origin;
    }

    /// <summary>The URI of a path under the root, escaped as a client would send it.</summary>
    public Uri UriOf(string relativePath) =>
        new(BaseUri, string.Join('/', relativePath.Split('/').Select(Uri.EscapeDataString)));

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync(CancellationToken.None);
        await _app.DisposeAsync();
    }

    private async Task HandleAsync(HttpContext context)
    {
        Interlocked.Increment(ref _requests);
        var request = context.Request;
        var response = context.Response;
        _log.Enqueue($"{request.Method} {request.Path}{request.QueryString} {request.Headers.Range}".TrimEnd());
        if (Unavailable)
        {
            response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            return;
        }

        if (!HttpMethods.IsGet(request.Method) && !HttpMethods.IsHead(request.Method))
        {
            response.StatusCode = StatusCodes.Status405MethodNotAllowed;
            response.Headers.Allow = "GET, HEAD";
            return;
        }

        var relative = Uri.UnescapeDataString(request.Path.Value ?? "/").TrimStart('/');
        var full = Path.GetFullPath(Path.Combine(_root, relative));
        if (full != _root && !full.StartsWith(_root + "/", StringComparison.Ordinal))
        {
            response.StatusCode = StatusCodes.Status403Forbidden;
            return;
        }

        if (Directory.Exists(full))
        {
            if (!(request.Path.Value ?? "/").EndsWith('/'))
            {
                // nginx redirects a directory without its slash, so relative links resolve.
                response.StatusCode = StatusCodes.Status301MovedPermanently;
                response.Headers.Location = request.Path.Value + "/";
                return;
            }

            Interlocked.Increment(ref _listings);
            await WriteListingAsync(context, full, "/" + relative);
            return;
        }

        if (!File.Exists(full))
        {
            response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }

        Interlocked.Increment(ref _fileRequests);
        var info = new FileInfo(full);
        if (HttpMethods.IsGet(request.Method))
        {
            Interlocked.Add(ref _bytesRequested, RequestedLength(request, info.Length));
        }

        // nginx's ETag: hex mtime (seconds) and hex size, strong.
        var mtime = new DateTimeOffset(info.LastWriteTimeUtc).ToUnixTimeSeconds();
        var etag = new EntityTagHeaderValue($"\"{mtime:x}-{info.Length:x}\"");
        var result = Results.File(full, "application/octet-stream", lastModified: info.LastWriteTimeUtc,
            entityTag: etag, enableRangeProcessing: true);
        await result.ExecuteAsync(context);
    }

    private static long RequestedLength(HttpRequest request, long length)
    {
        var range = request.GetTypedHeaders().Range;
        if (range is null || range.Ranges.Count != 1)
        {
            return length;
        }

        var r = range.Ranges.First();
        var from = r.From ?? Math.Max(0, length - (r.To ?? 0));
        var to = r.From is null ? length - 1 : Math.Min(r.To ?? (length - 1), length - 1);
        return Math.Max(0, to - from + 1);
    }

    /// <summary>nginx's autoindex page: a &lt;pre&gt; of links, each followed by its date and exact size.</summary>
    private static async Task WriteListingAsync(HttpContext context, string directory, string urlPath)
    {
        if (!urlPath.EndsWith('/'))
        {
            urlPath += "/";
        }

        var html = new StringBuilder();
        var title = WebUtility.HtmlEncode(urlPath);
        html.Append(CultureInfo.InvariantCulture, $"<html>\r\n<head><title>Index of {title}</title></head>\r\n<body>\r\n<h1>Index of {title}</h1><hr><pre><a href=\"../\">../</a>\r\n");
        var info = new DirectoryInfo(directory);
        foreach (var entry in info.EnumerateDirectories().OrderBy(d => d.Name, StringComparer.Ordinal))
        {
            AppendEntry(html, entry.Name + "/", entry.LastWriteTimeUtc, "-");
        }

        foreach (var entry in info.EnumerateFiles().OrderBy(f => f.Name, StringComparer.Ordinal))
        {
            AppendEntry(html, entry.Name, entry.LastWriteTimeUtc, entry.Length.ToString(CultureInfo.InvariantCulture));
        }

        html.Append("</pre><hr></body>\r\n</html>\r\n");
        var body = Encoding.UTF8.GetBytes(html.ToString());
        context.Response.ContentType = "text/html";
        context.Response.ContentLength = body.Length;
        if (HttpMethods.IsGet(context.Request.Method))
        {
            await context.Response.Body.WriteAsync(body);
        }
    }

    private static void AppendEntry(StringBuilder html, string name, DateTime modified, string size)
    {
        var href = Uri.EscapeDataString(name.TrimEnd('/')) + (name.EndsWith('/') ? "/" : "");
        var shown = name.Length > 50 ? name[..47] + "..>" : name;
        var date = modified.ToString("dd-MMM-yyyy HH:mm", CultureInfo.InvariantCulture);
        html.Append(CultureInfo.InvariantCulture,
            $"<a href=\"{href}\">{WebUtility.HtmlEncode(shown)}</a>{new string(' ', Math.Max(1, 51 - shown.Length))}{date} {size,19}\r\n");
    }
}
