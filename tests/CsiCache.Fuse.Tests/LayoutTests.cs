using System.Runtime.CompilerServices;
using CsiCache.Fuse.Protocol;

namespace CsiCache.Fuse.Tests;

/// <summary>Struct sizes as fuse_kernel.h (7.45) lays them out on a 64-bit ABI.</summary>
public sealed class LayoutTests
{
    [Fact]
    public void WireStructs_HaveKernelSizes()
    {
        Assert.Equal(40, Unsafe.SizeOf<FuseInHeader>());
        Assert.Equal(16, Unsafe.SizeOf<FuseOutHeader>());
        Assert.Equal(88, Unsafe.SizeOf<FuseAttr>());
        Assert.Equal(128, Unsafe.SizeOf<FuseEntryOut>());
        Assert.Equal(104, Unsafe.SizeOf<FuseAttrOut>());
        Assert.Equal(64, Unsafe.SizeOf<FuseInitIn>());
        Assert.Equal(64, Unsafe.SizeOf<FuseInitOut>());
        Assert.Equal(8, Unsafe.SizeOf<FuseOpenIn>());
        Assert.Equal(16, Unsafe.SizeOf<FuseOpenOut>());
        Assert.Equal(40, Unsafe.SizeOf<FuseReadIn>());
        Assert.Equal(16, Unsafe.SizeOf<FuseGetattrIn>());
        Assert.Equal(8, Unsafe.SizeOf<FuseForgetIn>());
        Assert.Equal(16, Unsafe.SizeOf<FuseForgetOne>());
        Assert.Equal(8, Unsafe.SizeOf<FuseBatchForgetIn>());
        Assert.Equal(80, Unsafe.SizeOf<FuseKstatfs>());
        Assert.Equal(80, Unsafe.SizeOf<FuseStatfsOut>());
        Assert.Equal(24, Unsafe.SizeOf<FuseDirent>());
        Assert.Equal(152, Unsafe.SizeOf<FuseDirentplus>());
        Assert.Equal(8, Unsafe.SizeOf<FuseInterruptIn>());
        Assert.Equal(8, Unsafe.SizeOf<FuseGetxattrIn>());
        Assert.Equal(8, Unsafe.SizeOf<FuseGetxattrOut>());
        Assert.Equal(8, Unsafe.SizeOf<FuseAccessIn>());
        Assert.Equal(24, Unsafe.SizeOf<FuseReleaseIn>());
        Assert.Equal(24, Unsafe.SizeOf<FuseFlushIn>());
        Assert.Equal(16, Unsafe.SizeOf<FuseBackingMap>());
    }

    [Fact]
    public void DeviceIoctlNumbers_MatchTheKernelMacros()
    {
        // _IOR(229, 0, uint32_t) and friends, worked out by hand.
        Assert.Equal(0x8004E500u, Native.FUSE_DEV_IOC_CLONE);
        Assert.Equal(0x4010E501u, Native.FUSE_DEV_IOC_BACKING_OPEN);
        Assert.Equal(0x4004E502u, Native.FUSE_DEV_IOC_BACKING_CLOSE);
    }

    [Fact]
    public void Opcodes_MatchTheKernelEnum()
    {
        Assert.Equal(1u, (uint)FuseOpcode.Lookup);
        Assert.Equal(26u, (uint)FuseOpcode.Init);
        Assert.Equal(42u, (uint)FuseOpcode.BatchForget);
        Assert.Equal(44u, (uint)FuseOpcode.ReadDirPlus);
        Assert.Equal(53u, (uint)FuseOpcode.CopyFileRange64);
        Assert.Equal(1UL << 37, (ulong)FuseInitFlags.Passthrough);
        Assert.Equal(1u << 7, (uint)FuseOpenOptions.Passthrough);
    }
}
