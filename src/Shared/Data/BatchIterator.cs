using Cluster.Tensors;

namespace Cluster.Data;

/// <summary>
/// Deals a dataset out in mini-batches, in an order fixed by a seed and the epoch number so that a
/// run can be repeated exactly, optionally over one shard of the data only (see
/// <see cref="Sharding"/>), as each worker of a data-parallel cluster does. Copies each batch into
/// buffers the caller owns: nothing is allocated per batch.
/// </summary>
public sealed class BatchIterator
{
    /// <summary>The base of the <see cref="SeededRandom.Derive"/> stream tags of the epoch orders ("EPOCH").</summary>
    private const ulong EpochStreamBase = 0x4550_4F43_4800_0000UL;

    /// <summary>The base of the stream tags of the augmentation draws ("AUGMENT").</summary>
    private const ulong AugmentStreamBase = 0x4155_474D_0000_0000UL;

    private readonly Dataset _data;
    private readonly int _batchSize;
    private readonly ulong _seed;
    private readonly bool _shuffle;
    private readonly int _shardIndex;
    private readonly int[] _shardSamples;
    private readonly int[] _order;
    private int _position;
    private bool _started;
    private SeededRandom? _augmentRandom;

    /// <summary>Prepares batches over shard <paramref name="shardIndex"/> of <paramref name="shardCount"/> of <paramref name="data"/>.</summary>
    /// <param name="data">The samples to deal out.</param>
    /// <param name="batchSize">Samples per batch, at least 1; the last batch of an epoch may hold fewer.</param>
    /// <param name="seed">Fixes the shard assignment and every epoch's order.</param>
    /// <param name="shuffle">True (the default) to visit the shard in a new seeded order each epoch; false for ascending sample order.</param>
    /// <param name="shardIndex">Which shard this iterator covers, in 0..<paramref name="shardCount"/>-1 (default 0).</param>
    /// <param name="shardCount">How many shards the data is split into (default 1: all of it).</param>
    /// <exception cref="ArgumentOutOfRangeException">A size or shard argument is out of range.</exception>
    public BatchIterator(Dataset data, int batchSize, ulong seed, bool shuffle = true, int shardIndex = 0, int shardCount = 1)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (batchSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, $"The batch size is {batchSize}; it must be at least 1.");
        }
        Sharding.ValidateShard(shardIndex, shardCount);

        _data = data;
        _batchSize = batchSize;
        _seed = seed;
        _shuffle = shuffle;
        _shardIndex = shardIndex;
        // Sorted so that the epoch order depends only on (seed, epoch), not on how the shard was drawn.
        _shardSamples = Sharding.ShardIndices(data.Count, shardIndex, shardCount, seed);
        Array.Sort(_shardSamples);
        _order = new int[_shardSamples.Length];
        BatchesPerEpoch = (int)(((long)_shardSamples.Length + batchSize - 1) / batchSize);
    }

    /// <summary>Random changes applied to each batch's images (training data only), or null for none.</summary>
    public Augmentation? Augmentation { get; init; }

    /// <summary>The number of samples in this iterator's shard.</summary>
    public int SampleCount => _shardSamples.Length;

    /// <summary>Batches in one epoch: SampleCount / batchSize rounded up; the last one may be smaller.</summary>
    public int BatchesPerEpoch { get; }

    /// <summary>
    /// Rewinds to the start of epoch <paramref name="epoch"/>, whose order is a permutation of the
    /// shard seeded by (seed, epoch, shard) when shuffling, or ascending sample order otherwise.
    /// Must be called before the first <see cref="Next"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="epoch"/> is negative.</exception>
    public void StartEpoch(int epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        _shardSamples.CopyTo(_order, 0);
        if (_shuffle)
        {
            ulong stream = EpochStreamBase + ((ulong)(uint)_shardIndex << 32) + (uint)epoch;
            SeededRandom.Derive(_seed, stream).Shuffle(_order.AsSpan());
        }
        if (Augmentation is not null)
        {
            _augmentRandom = SeededRandom.Derive(_seed, AugmentStreamBase + ((ulong)(uint)_shardIndex << 24) + (uint)epoch);
        }
        _position = 0;
        _started = true;
    }

    /// <summary>
    /// Copies the next batch of the epoch into the caller's buffers: its images, sample after sample,
    /// into <paramref name="images"/> (changed by <see cref="Augmentation"/> when set) and its labels
    /// into <paramref name="labels"/>; entries past the returned count are left as they were.
    /// </summary>
    /// <param name="images">At least batchSize x SampleSize floats.</param>
    /// <param name="labels">At least batchSize ints.</param>
    /// <returns>The number of samples copied: batchSize, fewer for the last batch, 0 once the epoch is over.</returns>
    /// <exception cref="InvalidOperationException"><see cref="StartEpoch"/> has not been called.</exception>
    /// <exception cref="ArgumentException">A buffer is too small for a full batch.</exception>
    public int Next(Span<float> images, Span<int> labels)
    {
        if (!_started)
        {
            throw new InvalidOperationException("Call StartEpoch before Next: the order of the samples depends on the epoch.");
        }
        int sampleSize = _data.SampleSize;
        if (images.Length < (long)_batchSize * sampleSize)
        {
            throw new ArgumentException(
                $"The image buffer holds {images.Length} floats; a batch of {_batchSize} samples of {sampleSize} needs {(long)_batchSize * sampleSize}.",
                nameof(images));
        }
        if (labels.Length < _batchSize)
        {
            throw new ArgumentException(
                $"The label buffer holds {labels.Length} ints; a batch of {_batchSize} needs {_batchSize}.", nameof(labels));
        }

        int count = Math.Min(_batchSize, _order.Length - _position);
        ReadOnlySpan<float> source = _data.Images;
        ReadOnlySpan<byte> sourceLabels = _data.Labels;
        for (int i = 0; i < count; i++)
        {
            int sample = _order[_position + i];
            source.Slice(sample * sampleSize, sampleSize).CopyTo(images.Slice(i * sampleSize, sampleSize));
            labels[i] = sourceLabels[sample];
        }
        _position += count;
        Augmentation?.Apply(images, count, _augmentRandom!);
        return count;
    }
}
