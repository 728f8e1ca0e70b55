using System.Buffers;
using Cluster.Wire;
using Google.Protobuf;

namespace Cluster.ParameterServer.Tests;

/// <summary>
/// The hand-written readers of the chunk messages against protobuf's own encoder (the oracle):
/// every field, negative and large values, unknown fields, a payload split across buffers.
/// </summary>
public sealed class WireFormatTests
{
    private static readonly byte[] Payload = Enumerable.Range(0, 4096).Select(i => (byte)(i * 7)).ToArray();

    /// <summary>The message as the transport may hand it over: in pieces of <paramref name="piece"/> bytes.</summary>
    private static ReadOnlySequence<byte> Split(byte[] bytes, int piece)
    {
        Segment? first = null, last = null;
        for (int i = 0; i < bytes.Length; i += piece)
        {
            var memory = bytes.AsMemory(i, Math.Min(piece, bytes.Length - i));
            last = last is null ? first = new Segment(memory, 0) : last.Append(memory);
        }
        return first is null ? ReadOnlySequence<byte>.Empty : new ReadOnlySequence<byte>(first, 0, last!, last!.Memory.Length);
    }

    /// <summary>The floats as the wire carries them: float32 little-endian.</summary>
    private static byte[] BytesOf(float[] values) => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }

    [Theory]
    [InlineData(1 << 20)]
    [InlineData(1000)]
    [InlineData(1)]
    public void GradientChunkReadsAsProtobufWroteIt(int piece)
    {
        var sent = new GradientChunk
        {
            WorkerId = -3,
            Step = long.MaxValue - 5,
            BaseVersion = 1L << 40,
            Index = 300,
            Count = 301,
            Data = ByteString.CopyFrom(Payload),
            Loss = -1.25e-7f,
            Samples = 64,
            Descending = true,
        };
        using var chunk = ReceivedGradientChunk.Parse(Split(sent.ToByteArray(), piece));
        Assert.Equal((sent.WorkerId, sent.Step, sent.BaseVersion, sent.Index, sent.Count, sent.Loss, sent.Samples, sent.Descending),
            (chunk.WorkerId, chunk.Step, chunk.BaseVersion, chunk.Index, chunk.Count, chunk.Loss, chunk.Samples, chunk.Descending));
        Assert.Equal(Payload, chunk.Data.ToArray());
    }

    [Fact]
    public void ExchangeRequestReadsAPullOrAChunk()
    {
        var pull = ReceivedExchangeRequest.Parse(new ReadOnlySequence<byte>(new ExchangeRequest { Pull = new PullRequest { WorkerId = 2, MinVersion = 9 } }.ToByteArray()));
        Assert.Equal((2, 9L), (pull.Pull!.WorkerId, pull.Pull.MinVersion));
        Assert.Null(pull.Chunk);

        var bytes = new ExchangeRequest { Chunk = new GradientChunk { Index = 5, Data = ByteString.CopyFrom(Payload) } }.ToByteArray();
        var push = ReceivedExchangeRequest.Parse(Split(bytes, 333));
        using var chunk = push.Chunk!;
        Assert.Null(push.Pull);
        Assert.Equal(5, chunk.Index);
        Assert.Equal(Payload, chunk.Data.ToArray());
    }

    [Fact]
    public void WeightChunkReadsAsProtobufWroteItAndSkipsUnknownFields()
    {
        var sent = new WeightChunk { Version = 77, Index = 1, Count = 2, Data = ByteString.CopyFrom(Payload), Finished = true, WaitedMs = 12.5 };
        var output = new MemoryStream();
        var writer = new CodedOutputStream(output);
        // Fields a newer server might add: a varint, a fixed64, bytes and a fixed32, before and after the known ones.
        writer.WriteTag(100, WireFormat.WireType.Varint);
        writer.WriteInt64(-1);
        writer.WriteTag(101, WireFormat.WireType.Fixed64);
        writer.WriteDouble(3);
        writer.Flush();
        sent.WriteTo(output);
        writer = new CodedOutputStream(output);
        writer.WriteTag(102, WireFormat.WireType.LengthDelimited);
        writer.WriteBytes(ByteString.CopyFromUtf8("later"));
        writer.WriteTag(103, WireFormat.WireType.Fixed32);
        writer.WriteFloat(1);
        writer.Flush();

        using var chunk = ReceivedWeightChunk.Parse(Split(output.ToArray(), 100));
        Assert.Equal((sent.Version, sent.Index, sent.Count, sent.Finished, sent.WaitedMs), (chunk.Version, chunk.Index, chunk.Count, chunk.Finished, chunk.WaitedMs));
        Assert.Equal(Payload, chunk.Data.ToArray());
    }

    [Fact]
    public void TruncatedMessageIsRefused()
    {
        var bytes = new GradientChunk { Index = 1, Data = ByteString.CopyFrom(Payload) }.ToByteArray();
        Assert.Throws<InvalidDataException>(() => ReceivedGradientChunk.Parse(new ReadOnlySequence<byte>(bytes, 0, bytes.Length - 1)));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(37)]
    [InlineData(4095)]
    public void CopyFiniteCopiesAndFindsEveryNonFiniteValue(int at)
    {
        var values = Enumerable.Range(0, 4096).Select(i => i * 0.5f - 7f).ToArray();
        var bytes = new byte[values.Length * sizeof(float)];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        var copy = new float[values.Length];
        Assert.True(FloatBytes.CopyFinite(bytes, copy));
        Assert.Equal(values, copy);
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
        {
            values[at] = bad;
            Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
            Assert.False(FloatBytes.CopyFinite(bytes, copy));
        }
    }

    [Theory]
    [InlineData(1, 5)]
    [InlineData(7, 1)]
    [InlineData(4093, 4094)]
    [InlineData(16384, 2)]
    public void CopyFiniteReadsFloatsThatStraddleTheTransportsBuffers(int piece, int at)
    {
        var values = Enumerable.Range(0, 4096).Select(i => i * 0.25f - 3f).ToArray();
        var copy = new float[values.Length];
        Assert.True(FloatBytes.CopyFinite(Split(BytesOf(values), piece), copy));
        Assert.Equal(values, copy);
        values[at] = float.NaN;
        Assert.False(FloatBytes.CopyFinite(Split(BytesOf(values), piece), copy));
    }

    [Fact]
    public void AGradientSinkTakesTheDataWithTheHeaderAsFinallyRead()
    {
        var values = Enumerable.Range(0, 1024).Select(i => i * 0.5f).ToArray();
        byte[] data = BytesOf(values);
        var encoded = new GradientChunk { WorkerId = 3, Step = 9, Index = 1, Count = 4, Data = ByteString.CopyFrom(data) }.ToByteArray();
        // Protobuf lets a field come again after the data, and the last value counts: index 2.
        byte[] bytes = [.. encoded, 4 << 3, 2];
        var sink = new RecordingSink(values.Length);
        GradientSink.Current = sink;
        try
        {
            using var taken = ReceivedGradientChunk.Parse(Split(bytes, 1000));
            Assert.True(taken.WrittenInPlace);
            Assert.True(taken.Finite);
            Assert.True(taken.Data.IsEmpty);
            Assert.Equal(data.Length, taken.DataLength);
            Assert.Equal((3, 9L, 2, 4), sink.Header);
            Assert.Equal(values, sink.Floats);

            sink.Declines = true;
            using var declined = ReceivedGradientChunk.Parse(Split(bytes, 1000));
            Assert.False(declined.WrittenInPlace);
            Assert.Equal(data, declined.Data.ToArray());
        }
        finally
        {
            GradientSink.Current = null;
        }
    }

    private sealed class RecordingSink(int floats) : GradientSink
    {
        public float[] Floats { get; } = new float[floats];

        public (int Worker, long Step, int Index, int Count) Header { get; private set; }

        public bool Declines { get; set; }

        public override bool TryWrite(ReceivedGradientChunk header, ReadOnlySequence<byte> payload, out bool finite)
        {
            finite = false;
            if (Declines)
            {
                return false;
            }
            Header = (header.WorkerId, header.Step, header.Index, header.Count);
            finite = FloatBytes.CopyFinite(payload, Floats);
            return true;
        }
    }
}
