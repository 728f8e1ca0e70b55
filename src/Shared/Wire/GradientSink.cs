using System.Buffers;

namespace Cluster.Wire;

/// <summary>
/// Where the gradient chunks of the stream being read may go: while the parameter server reads a
/// worker's stream it makes that stream's sink the current one for its own asynchronous flow, and
/// the chunk parser, which runs inside that read, offers each payload to it while the bytes are
/// still in the transport's buffers. A sink that takes it copies and checks it straight into the
/// gradient being assembled, instead of the parser copying it into a pooled buffer first and the
/// push copying it again. The mirror of <see cref="WeightSink"/> on the worker.
/// </summary>
public abstract class GradientSink
{
    private static readonly AsyncLocal<GradientSink?> CurrentSink = new();

    /// <summary>The sink of the stream being read in this asynchronous flow, if any.</summary>
    public static GradientSink? Current
    {
        get => CurrentSink.Value;
        set => CurrentSink.Value = value;
    }

    /// <summary>
    /// Copies <paramref name="payload"/>, the data of the chunk <paramref name="header"/> describes
    /// (its other fields read), into its place in the gradient, and tells in
    /// <paramref name="finite"/> whether every value was finite; false, with nothing written, when
    /// it is not the chunk expected next there. A taken chunk is still checked in full by the
    /// push it belongs to, which then skips the copy; writing before that check is safe because
    /// the place written is one no chunk of that push has filled yet.
    /// </summary>
    public abstract bool TryWrite(ReceivedGradientChunk header, ReadOnlySequence<byte> payload, out bool finite);
}
