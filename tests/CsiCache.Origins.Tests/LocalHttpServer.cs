using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace CsiCache.Origins.Tests;

/// <summary>
/// An in-process HTTP origin on 127.0.0.1 (Kestrel, port 0) serving a temp directory the way
/// real servers do. The first path segment picks the behaviour:
/// <list type="bullet">
/// <item>nginx, apache, apache-table, apache-list, json: listing styles; files with Range, ETag, If-Match.</item>
/// <item>norange: Range and If-Match ignored (200 with the whole body).</item>
/// <item>noifmatch: Range honoured, If-Match ignored.</item>
/// <item>noetag: no ETag, Last-Modified and If-Unmodified-Since only. weaketag: a weak ETag.</item>
/// <item>nohead: HEAD answers 405.</item>
/// <item>shortrange: at most 1000 bytes per 206. widerange: 206s widened to 4 KiB blocks.</item>
/// <item>flaky: 503 while <see cref="FailuresLeft"/> &gt; 0.</item>
/// <item>gzipforced: Content-Encoding gzip whatever was asked.</item>
/// <item>forbidden: 403. auth: 401 unless the Authorization header is <see cref="RequiredAuthorization"/>.</item>
/// </list>
/// </summary>
internal sealed class LocalHttpServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _failuresLeft;

    private LocalHttpServer(WebApplication app, string root)
    {
        _app = app;
        Root = root;
    }

    public string Root { get; }

    public Uri BaseUri { get; private set; } = null!;

    /// <summary>Requests seen per mode (first path segment) and method, e.g. "flaky GET".</summary>
    public ConcurrentDictionary<string, int> Requests { get; } = new();

    public int FailuresLeft
    {
        get => Volatile.Read(ref _failuresLeft);
        set => Volatile.Write(ref _failuresLeft, value);
    }

    public string? RequiredAuthorization { get; set; }

    public int Count(string mode, string method = "GET") => Requests.TryGetValue(mode + " " + method, out int n) ? n : 0;

    public Uri Url(string mode, string relative = "") => new(BaseUri, mode + "/" + relative);

    public static async Task<LocalHttpServer> StartAsync(string root)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var server = new LocalHttpServer(app, root);
        app.Run(server.HandleAsync);
        await app.StartAsync();
        string address = app.Services.GetService(typeof(IServer)) is IServer s
            ? s.Features.Get<IServerAddressesFeature>()!.Addresses.First()
            : throw new InvalidOperationException("no server");
        server.BaseUri = new Uri(address.TrimEnd('/') + "/");
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private async Task HandleAsync(HttpContext ctx)
    {
        string path = ctx.Request.Path.Value ?? "/";
        string[] parts = path.TrimStart('/').Split('/', 2);
        string mode = parts[0];
        string relative = parts.Length > 1 ? parts[1] : "";
        Requests.AddOrUpdate(mode + " " + ctx.Request.Method, 1, static (_, n) => n + 1);

        if (mode == "flaky" && Interlocked.Decrement(ref _failuresLeft) >= 0)
        {
            ctx.Response.StatusCode = 503;
            ctx.Response.Headers.RetryAfter = "0";
            return;
        }
        if (mode == "forbidden")
        {
            ctx.Response.StatusCode = 403;
            return;
        }
        if (mode == "auth" && ctx.Request.Headers.Authorization.ToString() != RequiredAuthorization)
        {
            ctx.Response.StatusCode = 401;
            ctx.Response.Headers.WWWAuthenticate = "Basic realm=\"test\"";
            return;
        }

        string full = Path.Join(Root, relative);
        if (Directory.Exists(full))
        {
            if (!path.EndsWith('/'))
            {
                // What nginx and Apache do for a directory named without its slash.
                ctx.Response.StatusCode = 301;
                ctx.Response.Headers.Location = EscapePath(path) + "/";
                return;
            }
            await ListingAsync(ctx, mode, path, full);
            return;
        }
        if (!File.Exists(full) || relative.EndsWith('/'))
        {
            ctx.Response.StatusCode = 404;
            return;
        }
        await FileAsync(ctx, mode, full);
    }

    private static string EscapePath(string path) => string.Join('/', path.Split('/').Select(Uri.EscapeDataString));

    private static async Task FileAsync(HttpContext ctx, string mode, string full)
    {
        var info = new FileInfo(full);
        long length = info.Length;
        var lastModified = new DateTimeOffset(info.LastWriteTimeUtc.Ticks / TimeSpan.TicksPerSecond * TimeSpan.TicksPerSecond, TimeSpan.Zero);
        string etag = string.Create(CultureInfo.InvariantCulture, $"\"{info.LastWriteTimeUtc.Ticks:x}-{length:x}\"");
        if (mode == "weaketag")
            etag = "W/" + etag; // what nginx sends once a filter (gzip, SSI) touched the body
        bool sendETag = mode != "noetag";
        var req = ctx.Request;
        var res = ctx.Response;

        if (mode == "nohead" && HttpMethods.IsHead(req.Method))
        {
            res.StatusCode = 405;
            return;
        }
        if (sendETag)
            res.Headers.ETag = etag;
        res.Headers.LastModified = lastModified.ToString("r", CultureInfo.InvariantCulture);
        res.Headers.AcceptRanges = mode == "norange" ? "none" : "bytes";
        if (mode == "gzipforced")
            res.Headers.ContentEncoding = "gzip"; // a misconfigured server compressing regardless

        bool honourPreconditions = mode is not ("norange" or "noifmatch");
        if (honourPreconditions)
        {
            string ifMatch = req.Headers.IfMatch.ToString();
            if (ifMatch.Length > 0 && ifMatch != "*" && !ifMatch.Split(',').Select(t => t.Trim()).Contains(sendETag ? etag : "\u0000"))
            {
                res.StatusCode = 412;
                return;
            }
            if (DateTimeOffset.TryParseExact(req.Headers.IfUnmodifiedSince.ToString(), "r", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var ius)
                && lastModified > ius)
            {
                res.StatusCode = 412;
                return;
            }
        }

        long start = 0, end = length - 1;
        bool partial = false;
        string range = req.Headers.Range.ToString();
        if (mode != "norange" && range.StartsWith("bytes=", StringComparison.Ordinal) && !range.Contains(','))
        {
            string[] se = range["bytes=".Length..].Split('-');
            long s = long.Parse(se[0], CultureInfo.InvariantCulture);
            long e = se[1].Length == 0 ? length - 1 : Math.Min(long.Parse(se[1], CultureInfo.InvariantCulture), length - 1);
            if (s >= length)
            {
                res.StatusCode = 416;
                res.Headers.ContentRange = "bytes */" + length.ToString(CultureInfo.InvariantCulture);
                return;
            }
            if (mode == "shortrange")
                e = Math.Min(e, s + 999);
            if (mode == "widerange")
            {
                // Aligned out to 4 KiB blocks: a superset of what was asked.
                s = s / 4096 * 4096;
                e = Math.Min(length - 1, ((e / 4096) + 1) * 4096 - 1);
            }
            start = s;
            end = e;
            partial = true;
        }

        long count = end - start + 1;
        res.StatusCode = partial ? 206 : 200;
        if (partial)
            res.Headers.ContentRange = string.Create(CultureInfo.InvariantCulture, $"bytes {start}-{end}/{length}");
        res.ContentType = "application/octet-stream";
        res.ContentLength = count;
        if (HttpMethods.IsHead(req.Method) || count == 0)
            return;
        await using var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        stream.Position = start;
        var buffer = new byte[64 * 1024];
        while (count > 0)
        {
            int n = await stream.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, count)));
            if (n == 0)
                break;
            await res.Body.WriteAsync(buffer.AsMemory(0, n));
            count -= n;
        }
    }

    private static async Task ListingAsync(HttpContext ctx, string mode, string urlPath, string dir)
    {
        var entries = new DirectoryInfo(dir).EnumerateFileSystemInfos().OrderBy(e => e.Name, StringComparer.Ordinal).ToList();
        string body = mode switch
        {
            "json" => NginxJson(entries),
            "apache" => ApachePre(urlPath, entries),
            "apache-table" => ApacheTable(urlPath, entries),
            "apache-list" => ApacheList(urlPath, entries),
            _ => NginxHtml(urlPath, entries),
        };
        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = mode == "json" ? "application/json" : "text/html; charset=utf-8";
        if (!HttpMethods.IsHead(ctx.Request.Method))
            await ctx.Response.WriteAsync(body);
    }

    private static string Href(FileSystemInfo e) => Uri.EscapeDataString(e.Name) + (e is DirectoryInfo ? "/" : "");

    private static string Html(string s) => WebUtility.HtmlEncode(s);

    private static string NginxHtml(string urlPath, List<FileSystemInfo> entries)
    {
        var sb = new StringBuilder();
        sb.Append("<html>\r\n<head><title>Index of ").Append(Html(urlPath)).Append("</title></head>\r\n<body>\r\n<h1>Index of ")
          .Append(Html(urlPath)).Append("</h1><hr><pre><a href=\"../\">../</a>\r\n");
        foreach (var e in entries)
        {
            string text = e.Name + (e is DirectoryInfo ? "/" : "");
            if (text.Length > 50)
                text = text[..47] + "..>"; // nginx truncates long names in the text, never in the href
            sb.Append("<a href=\"").Append(Href(e)).Append("\">").Append(Html(text)).Append("</a>")
              .Append(' ', Math.Max(1, 51 - text.Length))
              .Append(e.LastWriteTimeUtc.ToString("dd-MMM-yyyy HH:mm", CultureInfo.InvariantCulture))
              .Append((e is FileInfo f ? f.Length.ToString(CultureInfo.InvariantCulture) : "-").PadLeft(20))
              .Append("\r\n");
        }
        sb.Append("</pre><hr></body>\r\n</html>\r\n");
        return sb.ToString();
    }

    private static string NginxJson(List<FileSystemInfo> entries)
    {
        var sb = new StringBuilder("[\n");
        for (int i = 0; i < entries.Count; i++)
        {
            var e = entries[i];
            sb.Append("{ \"name\":").Append(System.Text.Json.JsonSerializer.Serialize(e.Name))
              .Append(", \"type\":\"").Append(e is DirectoryInfo ? "directory" : "file")
              .Append("\", \"mtime\":\"").Append(e.LastWriteTimeUtc.ToString("r", CultureInfo.InvariantCulture)).Append('"');
            if (e is FileInfo f)
                sb.Append(", \"size\":").Append(f.Length.ToString(CultureInfo.InvariantCulture));
            sb.Append(" }").Append(i + 1 < entries.Count ? ",\n" : "\n");
        }
        return sb.Append(']').ToString();
    }

    /// <summary>Apache's rounded sizes: bytes below 1 KiB, then "1.2K", "15M".</summary>
    private static string ApacheSize(FileSystemInfo e)
    {
        if (e is not FileInfo f)
            return "-";
        double v = f.Length;
        if (v < 1024)
            return f.Length.ToString(CultureInfo.InvariantCulture);
        string[] units = ["K", "M", "G", "T"];
        int u = -1;
        while (v >= 1024 && u < units.Length - 1)
        {
            v /= 1024;
            u++;
        }
        return (v < 10 ? v.ToString("0.0", CultureInfo.InvariantCulture) : v.ToString("0", CultureInfo.InvariantCulture)) + units[u];
    }

    private static string Parent(string urlPath)
    {
        string trimmed = urlPath.TrimEnd('/');
        return EscapePath(trimmed[..(trimmed.LastIndexOf('/') + 1)]);
    }

    private static string ApachePre(string urlPath, List<FileSystemInfo> entries)
    {
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<html>\n <head>\n  <title>Index of ").Append(Html(urlPath.TrimEnd('/')))
          .Append("</title>\n </head>\n <body>\n<h1>Index of ").Append(Html(urlPath.TrimEnd('/'))).Append("</h1>\n")
          .Append("<pre><img src=\"/icons/blank.gif\" alt=\"Icon \"> <a href=\"?C=N;O=D\">Name</a>                    <a href=\"?C=M;O=A\">Last modified</a>      <a href=\"?C=S;O=A\">Size</a>  <a href=\"?C=D;O=A\">Description</a><hr>")
          .Append("<img src=\"/icons/back.gif\" alt=\"[PARENTDIR]\"> <a href=\"").Append(Parent(urlPath)).Append("\">Parent Directory</a>                             -   \n");
        foreach (var e in entries)
        {
            string text = e.Name + (e is DirectoryInfo ? "/" : "");
            sb.Append("<img src=\"/icons/").Append(e is DirectoryInfo ? "folder.gif\" alt=\"[DIR]\"" : "unknown.gif\" alt=\"[   ]\"").Append("> ")
              .Append("<a href=\"").Append(Href(e)).Append("\">").Append(Html(text)).Append("</a>")
              .Append(' ', Math.Max(1, 24 - text.Length))
              .Append(e.LastWriteTimeUtc.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture))
              .Append(ApacheSize(e).PadLeft(6)).Append("  \n");
        }
        sb.Append("<hr></pre>\n<address>Apache/2.4.62 (Debian) Server at 127.0.0.1 Port 80</address>\n</body></html>\n");
        return sb.ToString();
    }

    private static string ApacheTable(string urlPath, List<FileSystemInfo> entries)
    {
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<html>\n <head>\n  <title>Index of ").Append(Html(urlPath.TrimEnd('/')))
          .Append("</title>\n </head>\n <body>\n<h1>Index of ").Append(Html(urlPath.TrimEnd('/'))).Append("</h1>\n  <table>\n")
          .Append("   <tr><th valign=\"top\"><img src=\"/icons/blank.gif\" alt=\"[ICO]\"></th><th><a href=\"?C=N;O=D\">Name</a></th><th><a href=\"?C=M;O=A\">Last modified</a></th><th><a href=\"?C=S;O=A\">Size</a></th><th><a href=\"?C=D;O=A\">Description</a></th></tr>\n")
          .Append("   <tr><th colspan=\"5\"><hr></th></tr>\n")
          .Append("<tr><td valign=\"top\"><img src=\"/icons/back.gif\" alt=\"[PARENTDIR]\"></td><td><a href=\"").Append(Parent(urlPath))
          .Append("\">Parent Directory</a></td><td>&nbsp;</td><td align=\"right\">  - </td><td>&nbsp;</td></tr>\n");
        foreach (var e in entries)
        {
            sb.Append("<tr><td valign=\"top\"><img src=\"/icons/").Append(e is DirectoryInfo ? "folder.gif\" alt=\"[DIR]\"" : "unknown.gif\" alt=\"[   ]\"")
              .Append("></td><td><a href=\"").Append(Href(e)).Append("\">").Append(Html(e.Name + (e is DirectoryInfo ? "/" : ""))).Append("</a></td>")
              .Append("<td align=\"right\">").Append(e.LastWriteTimeUtc.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture)).Append("  </td>")
              .Append("<td align=\"right\">").Append(ApacheSize(e)).Append("</td><td>&nbsp;</td></tr>\n");
        }
        sb.Append("   <tr><th colspan=\"5\"><hr></th></tr>\n</table>\n<address>Apache/2.4.62 (Debian) Server at 127.0.0.1 Port 80</address>\n</body></html>\n");
        return sb.ToString();
    }

    private static string ApacheList(string urlPath, List<FileSystemInfo> entries)
    {
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<html>\n <head>\n  <title>Index of ").Append(Html(urlPath.TrimEnd('/')))
          .Append("</title>\n </head>\n <body>\n<h1>Index of ").Append(Html(urlPath.TrimEnd('/'))).Append("</h1>\n<ul><li><a href=\"")
          .Append(Parent(urlPath)).Append("\"> Parent Directory</a></li>\n");
        foreach (var e in entries)
            sb.Append("<li><a href=\"").Append(Href(e)).Append("\"> ").Append(Html(e.Name + (e is DirectoryInfo ? "/" : ""))).Append("</a></li>\n");
        sb.Append("</ul>\n<address>Apache/2.4.62 (Debian) Server at 127.0.0.1 Port 80</address>\n</body></html>\n");
        return sb.ToString();
    }
}
