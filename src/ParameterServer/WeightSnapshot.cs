namespace Cluster.ParameterServer;

/// <summary>
/// The weights of one published version as raw little-endian float32 bytes, which pulls stream
/// without copying. Reference-counted: the store reuses the buffer once no pull holds it and a
/// newer version has been published, so publishing a version allocates nothing in steady state.
/// </summary>
public sealed class WeightSnapshot
{
    private readonly ParameterStore _owner;
    private int _references;

    internal WeightSnapshot(ParameterStore owner, int floats)
    {
        _owner = owner;
        Bytes = new byte[checked(floats * sizeof(float))];
    }

    /// <summary>The version these weights are.</summary>
    public long Version { get; internal set; }

    /// <summary>The weights as bytes.</summary>
    public byte[] Bytes { get; }

    internal void AddReference() => Interlocked.Increment(ref _references);

    /// <summary>Gives the snapshot back; the last release of a superseded version recycles the buffer.</summary>
    public void Release()
    {
        if (Interlocked.Decrement(ref _references) == 0)
        {
            _owner.Recycle(this);
        }
    }
}
