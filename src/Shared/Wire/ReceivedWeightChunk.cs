using System.Buffers;

namespace Cluster.Wire;

/// <summary>
/// A <see cref="WeightChunk"/> as a worker reads it off the wire: the same protobuf encoding
/// (protos/cluster.proto), parsed by hand so that the weights are copied once into a pooled buffer
/// rather than into a new array per chunk. Dispose gives the payload back; the other fields stay readable.
/// </summary>
public sealed class ReceivedWeightChunk : IDisposable
{
    private PooledBytes _data;

    /// <summary>WeightChunk.version.</summary>
    public long Version { get; private set; }

    /// <summary>WeightChunk.index.</summary>
    public int Index { get; private set; }

    /// <summary>WeightChunk.count.</summary>
    public int Count { get; private set; }

    /// <summary>WeightChunk.data: float32 little-endian (empty after <see cref="Dispose"/>).</summary>
    public ReadOnlySpan<byte> Data => _data.Span;

    /// <summary>True when the payload was copied straight into the reading pull's weights (<see cref="WeightSink"/>); <see cref="Data"/> is then empty.</summary>
    public bool InSink { get; private set; }

    /// <summary>WeightChunk.finished.</summary>
    public bool Finished { get; private set; }

    /// <summary>WeightChunk.waited_ms.</summary>
    public double WaitedMs { get; private set; }

    /// <summary>Parses one encoded WeightChunk; unknown fields are skipped, malformed input throws <see cref="InvalidDataException"/>.</summary>
    public static ReceivedWeightChunk Parse(ReadOnlySequence<byte> message)
    {
        var chunk = new ReceivedWeightChunk();
        try
        {
            var reader = new ProtoReader(message);
            while (reader.TryReadTag(out int field, out int wireType))
            {
                switch ((field, wireType))
                {
                    case (1, ProtoReader.Varint): chunk.Version = (long)reader.ReadVarint(); break;
                    case (2, ProtoReader.Varint): chunk.Index = (int)reader.ReadVarint(); break;
                    case (3, ProtoReader.Varint): chunk.Count = (int)reader.ReadVarint(); break;
                    case (4, ProtoReader.LengthDelimited):
                        var payload = reader.ReadLengthDelimited();
                        // Index and count come before the data in protobuf's field order: the
                        // payload can go straight where the pull wants it, one copy fewer.
                        if (WeightSink.Current is { } sink && sink.TryWrite(chunk.Index, chunk.Count, payload))
                        {
                            chunk.InSink = true;
                        }
                        else
                        {
                            chunk._data.CopyFrom(payload);
                        }
                        break;
                    case (5, ProtoReader.Varint): chunk.Finished = reader.ReadVarint() != 0; break;
                    case (6, ProtoReader.Fixed64): chunk.WaitedMs = BitConverter.UInt64BitsToDouble(reader.ReadFixed64()); break;
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
