namespace CsiCache.Csi;

/// <summary>
/// The plugin's gRPC endpoint. CSI plugins are reached over a unix domain socket
/// (kubelet and the sidecars pass <c>unix:///csi/csi.sock</c>); nothing else is accepted,
/// because a TCP listener would expose an unauthenticated storage API.
/// </summary>
public sealed record CsiEndpoint(string SocketPath)
{
    /// <summary>Parses <c>unix:///abs/path</c> (or the sidecars' short form <c>/abs/path</c>).</summary>
    public static CsiEndpoint Parse(string endpoint)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        string path;
        if (endpoint.StartsWith("unix://", StringComparison.Ordinal))
        {
            path = endpoint["unix://".Length..];
        }
        else if (endpoint.StartsWith('/'))
        {
            path = endpoint;
        }
        else
        {
            throw new ArgumentException(
                $"endpoint '{endpoint}' is not a unix socket: use unix:///absolute/path/csi.sock", nameof(endpoint));
        }

        if (!path.StartsWith('/') || path.Length < 2)
        {
            throw new ArgumentException(
                $"endpoint '{endpoint}' must name an absolute socket path, e.g. unix:///csi/csi.sock", nameof(endpoint));
        }

        return new CsiEndpoint(path);
    }

    /// <summary>
    /// Removes a socket file left by a previous run (Kestrel cannot bind over it) and makes
    /// sure the directory exists. Refuses to delete anything that is not a socket.
    /// </summary>
    public void PrepareForListen()
    {
        var dir = Path.GetDirectoryName(SocketPath);
        if (!string.IsNullOrEmpty(dir))
        {
            Directory.CreateDirectory(dir);
        }

        var info = new FileInfo(SocketPath);
        if (!info.Exists && !Directory.Exists(SocketPath))
        {
            return;
        }

        // A socket has no length; a directory or a file with content is somebody's data.
        if (Directory.Exists(SocketPath) || info.Length > 0)
        {
            throw new IOException($"{SocketPath} exists and is not a socket; refusing to remove it");
        }

        File.Delete(SocketPath);
    }

    /// <summary>
    /// Restricts the socket to its owner. Kubelet and the sidecars run as root, and nobody
    /// else on the node should be able to mount volumes through us.
    /// </summary>
    public void RestrictPermissions() =>
        File.SetUnixFileMode(SocketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);

    public override string ToString() => "unix://" + SocketPath;
}
