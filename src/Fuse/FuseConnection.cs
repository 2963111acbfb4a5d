using System.Runtime.InteropServices;
using CsiCache.Fuse.Passthrough;

namespace CsiCache.Fuse;

/// <summary>
/// What INIT negotiated with the kernel, handed to <see cref="IFuseFileSystem.Init"/>, and the door
/// to passthrough backing files.
/// </summary>
public sealed class FuseConnection
{
    private readonly IBackingDevice? _device;

    internal FuseConnection(uint protocolMinor, int maxRead, bool passthroughEnabled, IBackingDevice? device)
    {
        ProtocolMinor = protocolMinor;
        MaxRead = maxRead;
        PassthroughEnabled = passthroughEnabled && device is not null;
        _device = device;
    }

    /// <summary>The protocol minor in use: the lower of the kernel's and ours.</summary>
    public uint ProtocolMinor { get; }

    /// <summary>The largest READ the kernel will send, in bytes.</summary>
    public int MaxRead { get; }

    /// <summary>
    /// True when the kernel accepted FUSE_PASSTHROUGH and there is a device to register backing files
    /// with. When false, <see cref="TryOpenBackingFile"/> always fails and opens must be served by READ.
    /// </summary>
    public bool PassthroughEnabled { get; }

    /// <summary>
    /// Registers an open, readable file as a passthrough backing file. Returns false (with the errno)
    /// when passthrough is off or the kernel refuses (e.g. EPERM without CAP_SYS_ADMIN, or a backing
    /// file on a filesystem that is itself too deeply stacked): the caller then serves READ itself.
    /// </summary>
    public bool TryOpenBackingFile(SafeHandle file, out BackingId? backingId, out Errno error)
    {
        backingId = null;
        if (!PassthroughEnabled || _device is null)
        {
            error = Errno.EOPNOTSUPP;
            return false;
        }

        bool added = false;
        try
        {
            file.DangerousAddRef(ref added);
            int id = _device.OpenBacking((int)file.DangerousGetHandle());
            backingId = new BackingId(_device, id);
            error = Errno.Ok;
            return true;
        }
        catch (FuseNativeException e)
        {
            error = new Errno(e.Errno);
            return false;
        }
        finally
        {
            if (added)
            {
                file.DangerousRelease();
            }
        }
    }
}
