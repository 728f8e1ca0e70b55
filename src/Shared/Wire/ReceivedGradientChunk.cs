using System.Buffers;

namespace Cluster.Wire;

/// <summary>
/// A <see cref="GradientChunk"/> as the parameter server reads it off the wire: the same protobuf
/// encoding (protos/cluster.proto), parsed by hand. The payload goes, while it is still in the
/// transport's buffers, to the current <see cref="GradientSink"/> if it takes it (straight into the
/// gradient being assembled), else into a pooled buffer rather than a new array per chunk. Dispose
/// gives the pooled payload back; the header fields stay readable.
/// </summary>
public sealed class ReceivedGradientChunk : IDisposable
{
    private PooledBytes _data;

    /// <summary>GradientChunk.worker_id.</summary>
    public int WorkerId { get; private set; }

    /// <summary>GradientChunk.step.</summary>
    public long Step { get; private set; }

    /// <summary>GradientChunk.base_version.</summary>
    public long BaseVersion { get; private set; }

    /// <summary>GradientChunk.index.</summary>
    public int Index { get; private set; }

    /// <summary>GradientChunk.count.</summary>
    public int Count { get; private set; }

    /// <summary>GradientChunk.data: float32 little-endian (empty after <see cref="Dispose"/>, and when <see cref="WrittenInPlace"/>).</summary>
    public ReadOnlySpan<byte> Data => _data.Span;

    /// <summary>The length of GradientChunk.data in bytes, wherever it went.</summary>
    public int DataLength { get; private set; }

    /// <summary>The current <see cref="GradientSink"/> took the data while it was parsed: it is in the gradient already, not in <see cref="Data"/>.</summary>
    public bool WrittenInPlace { get; private set; }

    /// <summary>When <see cref="WrittenInPlace"/>: whether every value of the data was finite.</summary>
    public bool Finite { get; private set; }

    /// <summary>GradientChunk.loss.</summary>
    public float Loss { get; private set; }

    /// <summary>GradientChunk.samples.</summary>
    public int Samples { get; private set; }

    /// <summary>GradientChunk.descending.</summary>
    public bool Descending { get; private set; }

    /// <summary>GradientChunk.time, when the chunk carries it.</summary>
    public TimeSplit? Time { get; private set; }

    /// <summary>Parses one encoded GradientChunk; unknown fields are skipped, malformed input throws <see cref="InvalidDataException"/>.</summary>
    public static ReceivedGradientChunk Parse(ReadOnlySequence<byte> message)
    {
        var chunk = new ReceivedGradientChunk();
        try
        {
            var data = ReadOnlySequence<byte>.Empty;
            var reader = new ProtoReader(message);
            while (reader.TryReadTag(out int field, out int wireType))
            {
                switch ((field, wireType))
                {
                    case (1, ProtoReader.Varint): chunk.WorkerId = (int)reader.ReadVarint(); break;
                    case (2, ProtoReader.Varint): chunk.Step = (long)reader.ReadVarint(); break;
                    case (3, ProtoReader.Varint): chunk.BaseVersion = (long)reader.ReadVarint(); break;
                    case (4, ProtoReader.Varint): chunk.Index = (int)reader.ReadVarint(); break;
                    case (5, ProtoReader.Varint): chunk.Count = (int)reader.ReadVarint(); break;
                    case (6, ProtoReader.LengthDelimited): data = reader.ReadLengthDelimited(); break;
                    case (7, ProtoReader.Fixed32): chunk.Loss = BitConverter.UInt32BitsToSingle(reader.ReadFixed32()); break;
                    case (8, ProtoReader.Varint): chunk.Samples = (int)reader.ReadVarint(); break;
                    case (9, ProtoReader.Varint): chunk.Descending = reader.ReadVarint() != 0; break;
                    case (10, ProtoReader.LengthDelimited): chunk.Time = ParseTime(reader.ReadLengthDelimited()); break;
                    default: reader.Skip(wireType); break;
                }
            }
            // NOTE: the data is placed only now that every field is read: protobuf lets any field come after it, and the last value counts.
            chunk.DataLength = (int)data.Length;
            if (GradientSink.Current is { } sink && sink.TryWrite(chunk, data, out bool finite))
            {
                chunk.WrittenInPlace = true;
                chunk.Finite = finite;
            }
            else
            {
                chunk._data.CopyFrom(data);
            }
            return chunk;
        }
        catch
        {
            chunk.Dispose();
            throw;
        }
    }

    /// <summary>Gives the payload buffer back to the pool.</summary>
    public void Dispose() => _data.Return();

    private static TimeSplit ParseTime(ReadOnlySequence<byte> bytes)
    {
        try
        {
            return TimeSplit.Parser.ParseFrom(bytes);
        }
        catch (Google.Protobuf.InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"protobuf: the time field is malformed: {e.Message}", e);
        }
    }
}

/// <summary>
/// An <see cref="ExchangeRequest"/> as the parameter server reads it: a pull request, or a gradient
/// chunk parsed as a <see cref="ReceivedGradientChunk"/>.
/// </summary>
public sealed class ReceivedExchangeRequest
{
    /// <summary>ExchangeRequest.pull, or null.</summary>
    public PullRequest? Pull { get; private set; }

    /// <summary>ExchangeRequest.chunk, or null; the receiver disposes it.</summary>
    public ReceivedGradientChunk? Chunk { get; private set; }

    /// <summary>Parses one encoded ExchangeRequest (of the oneof, the last field present wins, as in protobuf).</summary>
    public static ReceivedExchangeRequest Parse(ReadOnlySequence<byte> message)
    {
        var request = new ReceivedExchangeRequest();
        try
        {
            var reader = new ProtoReader(message);
            while (reader.TryReadTag(out int field, out int wireType))
            {
                switch ((field, wireType))
                {
                    case (1, ProtoReader.LengthDelimited):
                        request.Chunk?.Dispose();
                        request.Chunk = null;
                        request.Pull = PullRequest.Parser.ParseFrom(reader.ReadLengthDelimited());
                        break;
                    case (2, ProtoReader.LengthDelimited):
                        request.Chunk?.Dispose();
                        request.Pull = null;
                        request.Chunk = ReceivedGradientChunk.Parse(reader.ReadLengthDelimited());
                        break;
                    default:
                        reader.Skip(wireType);
                        break;
                }
            }
            return request;
        }
        catch
        {
            request.Chunk?.Dispose();
            throw;
        }
    }
}
