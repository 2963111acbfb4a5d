using System.Buffers;
using System.IO.Pipelines;

namespace CsiCache.Csi;

/// <summary>
/// Makes the HTTP/2 <c>:authority</c> of requests on the CSI socket acceptable to Kestrel.
/// gRPC clients that dial a bare socket path (older kubelets, csi-sanity given
/// <c>--csi.endpoint=/path/csi.sock</c>, other Go tools) send the path itself as the authority,
/// e.g. <c>/var/lib/kubelet/plugins/csicache.dev/csi.sock</c> or its percent-encoded form. Kestrel
/// rejects such a request with PROTOCOL_ERROR (dotnet/aspnetcore#47043), so those callers could
/// not reach the plugin at all. On a unix socket the authority means nothing, so this connection
/// filter rewrites it, in the HEADERS frames as they arrive, to the same number of characters
/// with every character a host name may not contain replaced by '-'. The value keeps its length
/// so the HPACK dynamic tables of client and server stay the same size; it is re-encoded
/// without Huffman coding and the frame's length adjusted. Anything it does not understand
/// (a header block split over CONTINUATION frames, a malformed block) passes through untouched.
/// </summary>
public static class UnixSocketAuthority
{
    private static readonly byte[] Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray();

    /// <summary>Installs the filter on a Kestrel listener.</summary>
    public static void Use(Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions listen) =>
        listen.Use(next => async connection =>
        {
            var original = connection.Transport;
            var rewritten = new Pipe();
            connection.Transport = new DuplexPipe(rewritten.Reader, original.Output);
            var pump = PumpAsync(original.Input, rewritten.Writer);
            try
            {
                await next(connection);
            }
            finally
            {
                connection.Transport = original;
                original.Input.CancelPendingRead();
                await pump;
                await rewritten.Reader.CompleteAsync();
            }
        });

    private static async Task PumpAsync(PipeReader input, PipeWriter output)
    {
        var prefaceSeen = false;
        try
        {
            while (true)
            {
                var result = await input.ReadAsync();
                var buffer = result.Buffer;
                while (TryTakeUnit(ref buffer, ref prefaceSeen, output))
                {
                }

                input.AdvanceTo(buffer.Start, buffer.End);
                var flush = await output.FlushAsync();
                if (result.IsCompleted || result.IsCanceled || flush.IsCompleted)
                {
                    break;
                }
            }

            await output.CompleteAsync();
        }
        catch (Exception e)
        {
            await output.CompleteAsync(e);
        }
    }

    /// <summary>Moves one whole unit (the preface, or one frame) from <paramref name="buffer"/> to <paramref name="output"/>.</summary>
    private static bool TryTakeUnit(ref ReadOnlySequence<byte> buffer, ref bool prefaceSeen, PipeWriter output)
    {
        if (!prefaceSeen)
        {
            if (buffer.Length < Preface.Length)
            {
                return false;
            }

            Copy(buffer.Slice(0, Preface.Length), output);
            buffer = buffer.Slice(Preface.Length);
            prefaceSeen = true;
            return true;
        }

        if (buffer.Length < 9)
        {
            return false;
        }

        Span<byte> header = stackalloc byte[9];
        buffer.Slice(0, 9).CopyTo(header);
        var length = (header[0] << 16) | (header[1] << 8) | header[2];
        if (buffer.Length < 9 + length)
        {
            return false;
        }

        var frame = buffer.Slice(0, 9 + length);
        const byte headersType = 0x1, endHeaders = 0x4;
        if (header[3] == headersType && (header[4] & endHeaders) != 0 && Rewrite(frame.ToArray()) is { } replaced)
        {
            output.Write(replaced);
        }
        else
        {
            Copy(frame, output);
        }

        buffer = buffer.Slice(frame.End);
        return true;
    }

    private static void Copy(ReadOnlySequence<byte> bytes, PipeWriter output)
    {
        foreach (var segment in bytes)
        {
            output.Write(segment.Span);
        }
    }

    /// <summary>The frame with its :authority made a valid host, or null when it needs no change or cannot be read.</summary>
    internal static byte[]? Rewrite(byte[] frame)
    {
        const byte padded = 0x8, priority = 0x20;
        var flags = frame[4];
        var start = 9;
        var end = frame.Length;
        if ((flags & padded) != 0)
        {
            end -= frame[start];
            start++;
        }

        if ((flags & priority) != 0)
        {
            start += 5;
        }

        if (start > end)
        {
            return null;
        }

        var position = start;
        while (position < end)
        {
            var first = frame[position];
            int nameIndexPrefix;
            if ((first & 0x80) != 0)
            {
                if (!TrySkipInteger(frame, ref position, end, 7))
                {
                    return null;
                }

                continue;
            }

            if ((first & 0xC0) == 0x40)
            {
                nameIndexPrefix = 6;
            }
            else if ((first & 0xE0) == 0x20)
            {
                if (!TrySkipInteger(frame, ref position, end, 5))
                {
                    return null;
                }

                continue;
            }
            else
            {
                nameIndexPrefix = 4;
            }

            if (!TryReadInteger(frame, ref position, end, nameIndexPrefix, out var nameIndex))
            {
                return null;
            }

            if (nameIndex == 0 && !TrySkipString(frame, ref position, end))
            {
                return null;
            }

            var valueStart = position;
            if (!TryReadString(frame, ref position, end, out var value))
            {
                return null;
            }

            // Static table entry 1 is :authority; every client we know names it that way.
            if (nameIndex != 1 || IsHost(value))
            {
                continue;
            }

            var host = value.Select(b => IsHostByte(b) ? b : (byte)'-').ToArray();
            var block = new List<byte>(frame.Length);
            block.AddRange(frame.AsSpan(0, valueStart).ToArray());
            AppendInteger(block, host.Length, 7, 0x00);
            block.AddRange(host);
            block.AddRange(frame.AsSpan(position).ToArray());
            var rewritten = block.ToArray();
            var length = rewritten.Length - 9;
            rewritten[0] = (byte)(length >> 16);
            rewritten[1] = (byte)(length >> 8);
            rewritten[2] = (byte)length;
            return rewritten;
        }

        return null;
    }

    private static bool IsHostByte(byte b) => b is (>= (byte)'a' and <= (byte)'z') or (>= (byte)'A' and <= (byte)'Z')
        or (>= (byte)'0' and <= (byte)'9') or (byte)'.' or (byte)'-';

    /// <summary>A host name or address, optionally with a port: left alone.</summary>
    private static bool IsHost(List<byte> value)
    {
        if (value.Count == 0 || value[0] == (byte)'[')
        {
            return true;
        }

        var colon = value.IndexOf((byte)':');
        var hostPart = colon < 0 ? value : value.GetRange(0, colon);
        var port = colon < 0 ? [] : value.GetRange(colon + 1, value.Count - colon - 1);
        return hostPart.Count > 0 && hostPart.All(IsHostByte) && port.All(b => b is >= (byte)'0' and <= (byte)'9');
    }

    private static bool TryReadInteger(byte[] data, ref int position, int end, int prefixBits, out int value)
    {
        var mask = (1 << prefixBits) - 1;
        value = data[position++] & mask;
        if (value < mask)
        {
            return true;
        }

        var shift = 0;
        while (position < end && shift <= 21)
        {
            var b = data[position++];
            value += (b & 0x7F) << shift;
            shift += 7;
            if ((b & 0x80) == 0)
            {
                return true;
            }
        }

        return false;
    }

    private static bool TrySkipInteger(byte[] data, ref int position, int end, int prefixBits) =>
        TryReadInteger(data, ref position, end, prefixBits, out _);

    private static bool TrySkipString(byte[] data, ref int position, int end)
    {
        if (position >= end || !TryReadInteger(data, ref position, end, 7, out var length) || position + length > end)
        {
            return false;
        }

        position += length;
        return true;
    }

    private static bool TryReadString(byte[] data, ref int position, int end, out List<byte> value)
    {
        value = [];
        if (position >= end)
        {
            return false;
        }

        var huffman = (data[position] & 0x80) != 0;
        if (!TryReadInteger(data, ref position, end, 7, out var length) || position + length > end)
        {
            return false;
        }

        var raw = data.AsSpan(position, length);
        position += length;
        if (!huffman)
        {
            value.AddRange(raw.ToArray());
            return true;
        }

        return HpackHuffman.TryDecode(raw, value);
    }

    private static void AppendInteger(List<byte> output, int value, int prefixBits, byte flags)
    {
        var mask = (1 << prefixBits) - 1;
        if (value < mask)
        {
            output.Add((byte)(flags | value));
            return;
        }

        output.Add((byte)(flags | mask));
        value -= mask;
        while (value >= 0x80)
        {
            output.Add((byte)((value & 0x7F) | 0x80));
            value >>= 7;
        }

        output.Add((byte)value);
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
