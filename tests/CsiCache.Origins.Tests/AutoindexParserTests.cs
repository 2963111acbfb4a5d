using CsiCache.Origins.Http;

namespace CsiCache.Origins.Tests;

/// <summary>Literal listing pages, as nginx 1.24 and Apache 2.4 write them, parsed without a server.</summary>
public class AutoindexParserTests
{
    private static readonly Uri Page = new("http://mirror.example.org/pub/data/");

    private const string NginxHtml = """
        <html>
        <head><title>Index of /pub/data/</title></head>
        <body>
        <h1>Index of /pub/data/</h1><hr><pre><a href="../">../</a>
        <a href="images%20v2/">images v2/</a>                                         14-Mar-2024 09:12                   -
        <a href="%C3%BCber.csv">über.csv</a>                                           02-Feb-2024 18:40               48213
        <a href="100%25%20%23done.txt">100% #done.txt</a>                                     02-Feb-2024 18:41                   7
        <a href="a%26b.bin">a&amp;b.bin</a>                                          01-Jan-2024 00:00          1073741824
        <a href="a-really-long-file-name-that-nginx-truncates-in-the-text.tar.gz">a-really-long-file-name-that-nginx-truncates-..&gt;</a> 05-May-2023 07:07              123456
        </pre><hr></body>
        </html>
        """;

    [Fact]
    public void Nginx_Html_EntriesWithExactSizesAndDates()
    {
        var entries = AutoindexParser.Parse(NginxHtml, "text/html", Page);

        Assert.Equal(
            [
                ("images v2", OriginEntryKind.Directory, 0L),
                ("über.csv", OriginEntryKind.File, 48213L),
                ("100% #done.txt", OriginEntryKind.File, 7L),
                ("a&b.bin", OriginEntryKind.File, 1073741824L),
                ("a-really-long-file-name-that-nginx-truncates-in-the-text.tar.gz", OriginEntryKind.File, 123456L),
            ],
            entries.Select(e => (e.Name, e.Kind, e.Size)));
        Assert.Equal(new DateTimeOffset(2024, 2, 2, 18, 40, 0, TimeSpan.Zero), entries[1].Modified);
        Assert.All(entries, e => Assert.Null(e.Version));
    }

    [Fact]
    public void Nginx_HtmlHumanSizes_ReportedUnknown()
    {
        // autoindex_exact_size off
        const string page = """
            <html><head><title>Index of /pub/data/</title></head><body><h1>Index of /pub/data/</h1><hr><pre><a href="../">../</a>
            <a href="big.bin">big.bin</a>                                            01-Jan-2024 00:00      1G
            <a href="small.bin">small.bin</a>                                          01-Jan-2024 00:00     512
            </pre><hr></body></html>
            """;
        var entries = AutoindexParser.Parse(page, "text/html", Page);
        Assert.Equal([("big.bin", -1L), ("small.bin", 512L)], entries.Select(e => (e.Name, e.Size)));
    }

    private const string NginxJson = """
        [
        { "name":"images v2", "type":"directory", "mtime":"Thu, 14 Mar 2024 09:12:44 GMT" },
        { "name":"über.csv", "type":"file", "mtime":"Fri, 02 Feb 2024 18:40:01 GMT", "size":48213 },
        { "name":"100% #done.txt", "type":"file", "mtime":"Fri, 02 Feb 2024 18:41:00 GMT", "size":7 },
        { "name":"fifo", "type":"other", "mtime":"Fri, 02 Feb 2024 18:41:00 GMT" },
        { "name":"..", "type":"directory", "mtime":"Fri, 02 Feb 2024 18:41:00 GMT" }
        ]
        """;

    [Fact]
    public void Nginx_Json_EntriesOtherTypesSkipped()
    {
        var entries = AutoindexParser.Parse(NginxJson, "application/json", Page);
        Assert.Equal(
            [("images v2", OriginEntryKind.Directory, 0L), ("über.csv", OriginEntryKind.File, 48213L), ("100% #done.txt", OriginEntryKind.File, 7L)],
            entries.Select(e => (e.Name, e.Kind, e.Size)));
        Assert.Equal(new DateTimeOffset(2024, 2, 2, 18, 40, 1, TimeSpan.Zero), entries[1].Modified);
    }

    private const string ApachePre = """
        <!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">
        <html>
         <head>
          <title>Index of /pub/data</title>
         </head>
         <body>
        <h1>Index of /pub/data</h1>
        <pre><img src="/icons/blank.gif" alt="Icon "> <a href="?C=N;O=D">Name</a>                    <a href="?C=M;O=A">Last modified</a>      <a href="?C=S;O=A">Size</a>  <a href="?C=D;O=A">Description</a><hr><img src="/icons/back.gif" alt="[PARENTDIR]"> <a href="/pub/">Parent Directory</a>                             -   
        <img src="/icons/folder.gif" alt="[DIR]"> <a href="images%20v2/">images v2/</a>              2024-03-14 09:12    -   
        <img src="/icons/text.gif" alt="[TXT]"> <a href="%c3%bcber.csv">&uuml;ber.csv</a>                2024-02-02 18:40   47K  Comma separated
        <img src="/icons/unknown.gif" alt="[   ]"> <a href="tiny.txt">tiny.txt</a>                2024-02-02 18:41   7   
        <img src="/icons/unknown.gif" alt="[   ]"> <a href="/icons/">icons</a>                   2024-02-02 18:41   -   
        <img src="/icons/unknown.gif" alt="[   ]"> <a href="https://elsewhere.example.com/x.bin">x.bin</a>   2024-02-02 18:41   9   
        <hr></pre>
        <address>Apache/2.4.62 (Debian) Server at mirror.example.org Port 80</address>
        </body></html>
        """;

    [Fact]
    public void Apache_Pre_SortParentAndForeignLinksIgnored()
    {
        var entries = AutoindexParser.Parse(ApachePre, "text/html;charset=UTF-8", new Uri("http://mirror.example.org/pub/data/"));
        Assert.Equal(
            [("images v2", OriginEntryKind.Directory, 0L), ("über.csv", OriginEntryKind.File, -1L), ("tiny.txt", OriginEntryKind.File, 7L)],
            entries.Select(e => (e.Name, e.Kind, e.Size)));
        Assert.Equal(new DateTimeOffset(2024, 2, 2, 18, 40, 0, TimeSpan.Zero), entries[1].Modified);
    }

    private const string ApacheTable = """
        <!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">
        <html>
         <head>
          <title>Index of /pub/data</title>
         </head>
         <body>
        <h1>Index of /pub/data</h1>
          <table>
           <tr><th valign="top"><img src="/icons/blank.gif" alt="[ICO]"></th><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a></th><th><a href="?C=S;O=A">Size</a></th><th><a href="?C=D;O=A">Description</a></th></tr>
           <tr><th colspan="5"><hr></th></tr>
        <tr><td valign="top"><img src="/icons/back.gif" alt="[PARENTDIR]"></td><td><a href="/pub/">Parent Directory</a></td><td>&nbsp;</td><td align="right">  - </td><td>&nbsp;</td></tr>
        <tr><td valign="top"><img src="/icons/folder.gif" alt="[DIR]"></td><td><a href="images%20v2/">images v2/</a></td><td align="right">2024-03-14 09:12  </td><td align="right">  - </td><td>&nbsp;</td></tr>
        <tr><td valign="top"><img src="/icons/text.gif" alt="[TXT]"></td><td><a href="%c3%bcber.csv">&uuml;ber.csv</a></td><td align="right">2024-02-02 18:40  </td><td align="right"> 47K</td><td>Comma separated</td></tr>
        <tr><td valign="top"><img src="/icons/unknown.gif" alt="[   ]"></td><td><a href="tiny.txt">tiny.txt</a></td><td align="right">2024-02-02 18:41  </td><td align="right">  7 </td><td>&nbsp;</td></tr>
           <tr><th colspan="5"><hr></th></tr>
        </table>
        <address>Apache/2.4.62 (Debian) Server at mirror.example.org Port 80</address>
        </body></html>
        """;

    [Fact]
    public void Apache_Table_SameEntriesAsPre()
    {
        var entries = AutoindexParser.Parse(ApacheTable, "text/html", Page);
        Assert.Equal(
            [("images v2", OriginEntryKind.Directory, 0L), ("über.csv", OriginEntryKind.File, -1L), ("tiny.txt", OriginEntryKind.File, 7L)],
            entries.Select(e => (e.Name, e.Kind, e.Size)));
        Assert.Equal(new DateTimeOffset(2024, 2, 2, 18, 41, 0, TimeSpan.Zero), entries[2].Modified);
    }

    [Fact]
    public void Apache_PlainList_NamesOnly()
    {
        const string page = """
            <!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">
            <html>
             <head>
              <title>Index of /pub/data</title>
             </head>
             <body>
            <h1>Index of /pub/data</h1>
            <ul><li><a href="/pub/"> Parent Directory</a></li>
            <li><a href="images%20v2/"> images v2/</a></li>
            <li><a href="tiny.txt"> tiny.txt</a></li>
            <li><a href='single-quoted.bin'> single-quoted.bin</a></li>
            <li><a href=bare.bin> bare.bin</a></li>
            </ul>
            </body></html>
            """;
        var entries = AutoindexParser.Parse(page, "text/html", Page);
        Assert.Equal(
            [("images v2", OriginEntryKind.Directory, 0L), ("tiny.txt", OriginEntryKind.File, -1L), ("single-quoted.bin", OriginEntryKind.File, -1L), ("bare.bin", OriginEntryKind.File, -1L)],
            entries.Select(e => (e.Name, e.Kind, e.Size)));
        Assert.All(entries, e => Assert.Null(e.Modified));
    }

    [Theory]
    [InlineData("file.bin", "file.bin", false)]
    [InlineData("./file.bin", "file.bin", false)]
    [InlineData("/pub/data/abs.bin", "abs.bin", false)]
    [InlineData("http://mirror.example.org/pub/data/full.bin", "full.bin", false)]
    [InlineData("dir/", "dir", true)]
    [InlineData("über raw.txt", "über raw.txt", false)] // unescaped href from a sloppy server
    [InlineData("100%.dat", "100%.dat", false)]          // a bare '%' that is no escape
    [InlineData("%2e%2e%2fx", null, false)]   // encoded "../x": a name with '/', refused
    [InlineData("a%2Fb", null, false)]         // encoded '/': not a plain name
    [InlineData("../", null, false)]
    [InlineData("/", null, false)]
    [InlineData("/pub/", null, false)]
    [InlineData("?C=N;O=D", null, false)]
    [InlineData("#top", null, false)]
    [InlineData("deeper/file.bin", null, false)]
    [InlineData("file.bin?download=1", null, false)]
    [InlineData("https://mirror.example.org/pub/data/other-scheme.bin", null, false)]
    [InlineData("http://evil.example.com/pub/data/x.bin", null, false)]
    [InlineData("mailto:admin@example.org", null, false)]
    [InlineData("javascript:alert(1)", null, false)]
    public void ChildName_OnlyDirectChildrenOnTheSameServer(string href, string? expected, bool isDirectory)
    {
        bool ok = AutoindexParser.TryChildName(href, Page, Page.AbsolutePath, out string? name, out bool dir);
        Assert.Equal(expected is not null, ok);
        Assert.Equal(expected, name);
        if (ok)
            Assert.Equal(isDirectory, dir);
    }

    [Fact]
    public void Json_Malformed_Throws()
    {
        Assert.ThrowsAny<System.Text.Json.JsonException>(() => AutoindexParser.Parse("[{\"name\": ", "application/json", Page));
    }
}
