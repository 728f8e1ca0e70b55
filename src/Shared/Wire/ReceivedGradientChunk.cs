using System.Buffers;

namespace Cluster.Wire;

/// <summary>
/// A <see cref="GradientChunk"/> as the parameter server reads it off the wire: the same protobuf
/// encoding (protos/cluster.proto), parsed by hand so that the payload is copied once out of the
/// transport's buffers into a pooled buffer rather than into a new array per chunk. Dispose gives
/// the payload back; the header fields stay readable.
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

    /// <summary>GradientChunk.data: float32 little-endian (empty after <see cref="Dispose"/>).</summary>
    public ReadOnlySpan<byte> Data => _data.Span;

    /// <summary>GradientChunk.loss.</summary>
    public float Loss { get; private set; }

    /// <summary>GradientChunk.samples.</summary>
    public int Samples { get; private set; }

    /// <summary>GradientChunk.descending.</summary>
    public bool Descending { get; private set; }

    /// <summary>Parses one encoded GradientChunk; unknown fields are skipped, malformed input throws <see cref="InvalidDataException"/>.</summary>
    public static ReceivedGradientChunk Parse(ReadOnlySequence<byte> message)
    {
        var chunk = new ReceivedGradientChunk();
        try
        {
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
                    case (6, ProtoReader.LengthDelimited): chunk._data.CopyFrom(reader.ReadLengthDelimited()); break;
                    case (7, ProtoReader.Fixed32): chunk.Loss = BitConverter.UInt32BitsToSingle(reader.ReadFixed32()); break;
                    case (8, ProtoReader.Varint): chunk.Samples = (int)reader.ReadVarint(); break;
                    case (9, ProtoReader.Varint): chunk.Descending = reader.ReadVarint() != 0; break;
                    default: reader.Skip(wireType); break;
                }
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
