using System.Diagnostics;
using System.Text.RegularExpressions;
using CsiCache.Csi;
using Grpc.Core;

namespace CsiCache.Node;

/// <summary>
/// Mounts and unmounts. Bind mounts go straight through mount(2). Loop-backed ext4 goes
/// through util-linux's mount(8) with <c>-o loop</c>, which picks a free loop device and sets
/// it to detach itself when the filesystem is unmounted, so an unmount never leaks a loop
/// device. No call ever goes through a shell: mount options are validated and passed as
/// separate arguments.
/// </summary>
public static partial class Mounter
{
    // Options a pod may ask for through the StorageClass's mountOptions. Anything that would
    // change what is mounted (loop offsets, helpers, x-mount.*) is refused.
    private static readonly HashSet<string> ForbiddenOptions = new(StringComparer.Ordinal)
    {
        "loop", "offset", "sizelimit", "helper", "uhelper", "encryption", "bind", "rbind", "move", "remount",
    };

    /// <summary>Throws INVALID_ARGUMENT for a mount flag we will not pass on.</summary>
    public static IReadOnlyList<string> ValidateMountFlags(IEnumerable<string> flags)
    {
        var result = new List<string>();
        foreach (var flag in flags)
        {
            if (!FlagPattern().IsMatch(flag))
            {
                throw CsiErrors.InvalidArgument(
                    $"mount flag '{flag}' is not a plain mount option (letters, digits, '_' and an optional '=value')");
            }

            var name = flag.Split('=')[0];
            if (ForbiddenOptions.Contains(name))
            {
                throw CsiErrors.InvalidArgument($"mount flag '{flag}' is not allowed on csicache volumes");
            }

            result.Add(flag);
        }

        return result;
    }

    /// <summary>Mounts an ext4 image through a self-detaching loop device.</summary>
    public static async Task MountImageAsync(string image, string target, IReadOnlyList<string> flags, CancellationToken ct)
    {
        var options = string.Join(',', new[] { "loop" }.Concat(flags));
        await RunAsync("mount", ["-t", "ext4", "-o", options, image, target], ct);
    }

    /// <summary>Bind-mounts <paramref name="source"/> at <paramref name="target"/>, read-only when asked.</summary>
    public static void Bind(string source, string target, bool readOnly)
    {
        Check(Native.Mount(source, target, null, Native.MS_BIND, null), "bind mount", target);
        if (readOnly)
        {
            // MS_RDONLY is ignored on the first MS_BIND call; a bind mount becomes read-only only on remount.
            var rc = Native.Mount("none", target, null, Native.MS_BIND | Native.MS_REMOUNT | Native.MS_RDONLY, null);
            if (rc != 0)
            {
                var errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
                Native.Umount2(target, Native.MNT_DETACH);
                throw new CsiFaultException(StatusCode.Internal, $"read-only remount of {target} failed: {Native.ErrorText(errno)}");
            }
        }
    }

    /// <summary>
    /// Unmounts everything stacked at <paramref name="target"/>. A busy mount is detached lazily
    /// as the last resort, so an unpublish never wedges kubelet on a pod that holds a file open.
    /// </summary>
    public static void Unmount(string target)
    {
        for (var attempt = 0; attempt < 16 && MountTable.IsMountPoint(target); attempt++)
        {
            if (Native.Umount2(target, 0) == 0)
            {
                continue;
            }

            var errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            if (errno == Native.EINVAL || errno == Native.ENOENT)
            {
                break;
            }

            if (Native.Umount2(target, Native.MNT_DETACH) != 0)
            {
                var detachErrno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
                throw new CsiFaultException(StatusCode.Internal, $"unmount of {target} failed: {Native.ErrorText(detachErrno)}");
            }
        }
    }

    /// <summary>Runs a tool with an argument vector (never a shell) and turns failure into INTERNAL with its stderr.</summary>
    public static async Task<string> RunAsync(string tool, IReadOnlyList<string> arguments, CancellationToken ct)
    {
        var start = new ProcessStartInfo(tool)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new CsiFaultException(StatusCode.Internal, $"could not start {tool}");
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        try
        {
            await process.WaitForExitAsync(ct);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        if (process.ExitCode != 0)
        {
            var message = (await stderr).Trim();
            throw new CsiFaultException(StatusCode.Internal, $"{tool} exited with {process.ExitCode}: {message}");
        }

        return await stdout;
    }

    private static void Check(int rc, string what, string target)
    {
        if (rc != 0)
        {
            var errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            throw new CsiFaultException(StatusCode.Internal, $"{what} at {target} failed: {Native.ErrorText(errno)}");
        }
    }

    [GeneratedRegex("^[a-z0-9_]+(=[A-Za-z0-9_.:/-]+)?$")]
    private static partial Regex FlagPattern();
}
