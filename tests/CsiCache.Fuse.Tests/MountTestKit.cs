using System.Collections.Concurrent;
using CsiCache.Fuse;

namespace CsiCache.Fuse.Tests;

/// <summary>
/// Real mounts need root (CAP_SYS_ADMIN for mount(2)) and /dev/fuse. CI has both; anywhere else
/// these tests fail with this message rather than pass without having run.
/// </summary>
internal static class MountEnvironment
{
    public const string Trait = "RequiresRootAndDevFuse";

    public static void Require()
    {
        if (!File.Exists("/dev/fuse"))
        {
            Assert.Fail("this test mounts a real FUSE filesystem and needs /dev/fuse, which is missing");
        }
        if (Environment.UserName != "root" && Environment.GetEnvironmentVariable("USER") != "root")
        {
            Assert.Fail("this test mounts a real FUSE filesystem and needs root (CAP_SYS_ADMIN)");
        }
    }

    /// <summary>Kernel 6.9 brought FUSE passthrough.</summary>
    public static bool KernelHasPassthrough()
    {
        string release = File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
        string[] parts = release.Split('.', '-');
        return int.TryParse(parts[0], out int major) && int.TryParse(parts[1], out int minor) && (major > 6 || (major == 6 && minor >= 9));
    }
}

/// <summary>A source tree with the shapes worth testing: empty, tiny, page-straddling and multi-MiB files, a big directory, symlinks, modes.</summary>
internal static class SourceTree
{
    public static readonly (string Name, int Size)[] Files =
    [
        ("empty.bin", 0),
        ("one.bin", 1),
        ("page.bin", 4096),
        ("odd.bin", 12345),
        ("mib-plus-one.bin", (1 << 20) + 1),
        ("five-mib.bin", 5 << 20),
        ("sub/nested/deep.txt", 777),
        ("sub/sibling.bin", 70000),
        ("name with spaces.txt", 10),
        ("ünïcödé.txt", 20),
    ];

    public const int ManyCount = 2000;

    public static void Create(string root)
    {
        var random = new Random(1234);
        foreach ((string name, int size) in Files)
        {
            string path = Path.Combine(root, name);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            byte[] data = new byte[size];
            random.NextBytes(data);
            File.WriteAllBytes(path, data);
        }
        string many = Path.Combine(root, "many");
        Directory.CreateDirectory(many);
        for (int i = 0; i < ManyCount; i++)
        {
            // Names of varying length so records pack unevenly across READDIR pages.
            File.WriteAllText(Path.Combine(many, $"entry-{i:D5}{new string('x', i % 37)}"), i.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        File.SetUnixFileMode(Path.Combine(root, "odd.bin"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute);
        File.SetUnixFileMode(Path.Combine(root, "one.bin"), UnixFileMode.UserRead);
        File.CreateSymbolicLink(Path.Combine(root, "link-to-one"), "one.bin");
        File.CreateSymbolicLink(Path.Combine(root, "link-to-sub"), "sub");
        File.CreateSymbolicLink(Path.Combine(root, "dangling"), "does/not/exist");
        File.SetLastWriteTimeUtc(Path.Combine(root, "page.bin"), new DateTime(2001, 2, 3, 4, 5, 6, 789, DateTimeKind.Utc));
    }
}

/// <summary>A temp source dir, a mount point, a loopback filesystem mounted there; always unmounted on dispose.</summary>
internal sealed class TestMount : IAsyncDisposable
{
    private TestMount(string root, LoopbackFileSystem fs, FuseSession session, ConcurrentQueue<string> logs)
    {
        Root = root;
        Fs = fs;
        Session = session;
        Logs = logs;
    }

    public string Root { get; }

    /// <summary>The shared source tree (read-only by convention: no test writes to it).</summary>
    public string Source => SharedSource.Path;

    public string MountPoint => Path.Combine(Root, "mnt");

    public LoopbackFileSystem Fs { get; }

    public FuseSession Session { get; }

    public ConcurrentQueue<string> Logs { get; }

    /// <summary>A fresh directory holding an empty "mnt".</summary>
    public static string NewRoot()
    {
        string root = Path.Combine(Path.GetTempPath(), "csicache-fuse-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Path.Combine(root, "mnt"));
        return root;
    }

    public static async Task<TestMount> CreateAsync(bool usePassthrough = false, FuseOptions? options = null, bool declineOpens = false, bool declineOpenDirs = false)
    {
        MountEnvironment.Require();
        string root = NewRoot();
        var logs = new ConcurrentQueue<string>();
        var fs = new LoopbackFileSystem(SharedSource.Path, usePassthrough, declineOpens, declineOpenDirs);
        options = (options ?? new FuseOptions()) with { Log = logs.Enqueue, EnablePassthrough = usePassthrough };
        FuseSession session;
        try
        {
            session = await FuseSession.MountAsync(Path.Combine(root, "mnt"), fs, options);
        }
        catch
        {
            ForceUnmount(Path.Combine(root, "mnt"));
            Directory.Delete(root, recursive: true);
            throw;
        }
        return new TestMount(root, fs, session, logs);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Session.DisposeAsync();
        }
        finally
        {
            ForceUnmount(MountPoint);
            try
            {
                Directory.Delete(Root, recursive: true);
            }
            catch (IOException)
            {
                // A mount we could not remove keeps its directory; the next run uses a fresh one.
            }
        }
    }

    /// <summary>
    /// The finally block of a test that mounts by hand: stop its session if it got one, detach
    /// whatever is still mounted, and remove its root.
    /// </summary>
    public static async Task TearDownAsync(FuseSession? session, string mountPoint, string root)
    {
        if (session is not null)
        {
            await session.DisposeAsync();
        }

        ForceUnmount(mountPoint);
        Directory.Delete(root, recursive: true);
    }

    /// <summary>Last resort for a test that failed half way: detach whatever is still mounted there.</summary>
    public static void ForceUnmount(string mountPoint)
    {
        for (int i = 0; i < 4 && MountInfo.Find(mountPoint) is not null; i++)
        {
            try
            {
                FuseMount.Unmount(mountPoint);
            }
            catch (FuseNativeException)
            {
                break;
            }
        }
    }
}

/// <summary>
/// The source tree, built once per test run (2000 files take seconds to write on some disks) and
/// removed by <see cref="SharedSourceCleanup"/> at the end.
/// </summary>
internal static class SharedSource
{
    private static readonly Lazy<string> Root = new(() =>
    {
        string path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "csicache-fuse-src-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(path);
        SourceTree.Create(path);
        return path;
    });

    public static string Path => Root.Value;

    public static bool Created => Root.IsValueCreated;
}

public sealed class SharedSourceCleanup : IDisposable
{
    public void Dispose()
    {
        if (SharedSource.Created)
        {
            Directory.Delete(SharedSource.Path, recursive: true);
        }
    }
}

/// <summary>One mount shared by the read-only tests of a class (mounting per test would dominate the run time).</summary>
public sealed class SharedMountFixture : IAsyncLifetime
{
    private TestMount? _mount;

    internal TestMount Mount => _mount ?? throw new InvalidOperationException("mount failed in fixture setup");

    public async ValueTask InitializeAsync() => _mount = await TestMount.CreateAsync();

    public async ValueTask DisposeAsync()
    {
        if (_mount is not null)
        {
            await _mount.DisposeAsync();
        }
    }
}
