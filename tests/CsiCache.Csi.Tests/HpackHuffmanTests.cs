using System.Text;
using CsiCache.Csi;

namespace CsiCache.Csi.Tests;

public sealed class HpackHuffmanTests
{
    [Fact]
    public void TryDecode_Rfc7541Example_DecodesTheAuthority()
    {
        // RFC 7541 C.4.1: "www.example.com", Huffman-coded.
        byte[] encoded = [0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff];
        var decoded = new List<byte>();
        Assert.True(HpackHuffman.TryDecode(encoded, decoded));
        Assert.Equal("www.example.com", Encoding.ASCII.GetString([.. decoded]));
    }

    [Fact]
    public void TryDecode_BadPadding_Refused()
    {
        // 00000 is '0'; the three bits left (000) are not a prefix of EOS, which is all ones.
        Assert.False(HpackHuffman.TryDecode([0x00], []));
        var zero = new List<byte>();
        Assert.True(HpackHuffman.TryDecode([0x07], zero)); // '0' then 111: valid padding
        Assert.Equal("0", Encoding.ASCII.GetString([.. zero]));
    }

    [Fact]
    public void Rewrite_RawPathAuthority_BecomesSameLengthHost_FrameLengthAdjusted()
    {
        var path = "/var/lib/csi.sock"u8.ToArray();
        byte[] block = [0x83, 0x41, (byte)path.Length, .. path, 0x86];
        byte[] frame = [0, 0, (byte)block.Length, 0x1, 0x4, 0, 0, 0, 1, .. block];
        var rewritten = UnixSocketAuthority.Rewrite(frame);
        Assert.NotNull(rewritten);
        Assert.Equal(rewritten.Length - 9, (rewritten[0] << 16) | (rewritten[1] << 8) | rewritten[2]);
        Assert.Equal("-var-lib-csi.sock", Encoding.ASCII.GetString(rewritten, 12, path.Length));
        Assert.Equal(0x86, rewritten[^1]);
        Assert.Null(UnixSocketAuthority.Rewrite([0, 0, 12, 0x1, 0x4, 0, 0, 0, 1, 0x83, 0x41, 9, .. "localhost"u8.ToArray()]));
    }
}
