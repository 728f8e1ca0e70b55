using System.Buffers;
using System.Buffers.Binary;

namespace Cluster.Wire;

/// <summary>
/// Reads the protobuf encoding field by field from a gRPC message as it lies in the transport's
/// buffers, for the chunk messages whose payload is copied straight out of those buffers instead
/// of into a fresh array per message (see <see cref="ReceivedGradientChunk"/>). Malformed input
/// throws <see cref="InvalidDataException"/>.
/// </summary>
internal ref struct ProtoReader(ReadOnlySequence<byte> message)
{
    /// <summary>Wire type of varint fields (int32, int64, bool).</summary>
    public const int Varint = 0;

    /// <summary>Wire type of 8-byte fields (double).</summary>
    public const int Fixed64 = 1;

    /// <summary>Wire type of bytes, strings and sub-messages.</summary>
    public const int LengthDelimited = 2;

    /// <summary>Wire type of 4-byte fields (float).</summary>
    public const int Fixed32 = 5;

    private SequenceReader<byte> _reader = new(message);

    /// <summary>Reads the next field's number and wire type; false at the end of the message.</summary>
    public bool TryReadTag(out int field, out int wireType)
    {
        if (_reader.End)
        {
            field = 0;
            wireType = 0;
            return false;
        }
        ulong tag = ReadVarint();
        field = (int)(tag >> 3);
        wireType = (int)(tag & 7);
        if (field < 1 || tag > int.MaxValue)
        {
            throw new InvalidDataException($"protobuf: field number {tag >> 3} is not valid");
        }
        return true;
    }

    /// <summary>A varint; int32 and int64 fields are its low bits (negative int32 values are sign-extended to 10 bytes).</summary>
    public ulong ReadVarint()
    {
        ulong value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (!_reader.TryRead(out byte b))
            {
                throw new InvalidDataException("protobuf: the message ends inside a varint");
            }
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return value;
            }
        }
        throw new InvalidDataException("protobuf: a varint is longer than 10 bytes");
    }

    /// <summary>A 4-byte little-endian field (float).</summary>
    public uint ReadFixed32()
    {
        Span<byte> bytes = stackalloc byte[4];
        if (!_reader.TryCopyTo(bytes))
        {
            throw new InvalidDataException("protobuf: the message ends inside a 4-byte field");
        }
        _reader.Advance(4);
        return BinaryPrimitives.ReadUInt32LittleEndian(bytes);
    }

    /// <summary>An 8-byte little-endian field (double).</summary>
    public ulong ReadFixed64()
    {
        Span<byte> bytes = stackalloc byte[8];
        if (!_reader.TryCopyTo(bytes))
        {
            throw new InvalidDataException("protobuf: the message ends inside an 8-byte field");
        }
        _reader.Advance(8);
        return BinaryPrimitives.ReadUInt64LittleEndian(bytes);
    }

    /// <summary>The bytes of a length-delimited field, as a slice of the message (nothing is copied).</summary>
    public ReadOnlySequence<byte> ReadLengthDelimited()
    {
        ulong length = ReadVarint();
        if (length > (ulong)_reader.Remaining)
        {
            throw new InvalidDataException($"protobuf: a field announces {length} bytes but the message has {_reader.Remaining} left");
        }
        var slice = _reader.UnreadSequence.Slice(0, (long)length);
        _reader.Advance((long)length);
        return slice;
    }

    /// <summary>Skips a field this reader does not know, as protobuf requires of readers of newer messages.</summary>
    public void Skip(int wireType)
    {
        switch (wireType)
        {
            case Varint:
                ReadVarint();
                break;
            case Fixed64:
                ReadFixed64();
                break;
            case LengthDelimited:
                ReadLengthDelimited();
                break;
            case Fixed32:
                ReadFixed32();
                break;
            default:
                throw new InvalidDataException($"protobuf: wire type {wireType} is not supported");
        }
    }
}
