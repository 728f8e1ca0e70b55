using Cluster.Tensors;

namespace Cluster.Data;

/// <summary>
/// Splits a dataset between the workers of a cluster: every worker computes its own shard from the
/// same (count, seed) without talking to the others, and the shards partition the samples.
/// </summary>
public static class Sharding
{
    /// <summary>The <see cref="SeededRandom.Derive"/> stream tag of the shard assignment ("SHARD").</summary>
    private const ulong ShardStream = 0x5348_4152_4400_0000UL;

    /// <summary>
    /// The sample indices of shard <paramref name="shardIndex"/> of <paramref name="shardCount"/>: a
    /// fixed slice of a permutation of 0..<paramref name="count"/>-1 seeded by <paramref name="seed"/>.
    /// Shards are disjoint, together cover every index, and their sizes differ by at most 1; the same
    /// arguments always give the same result. A shard is empty when there are more shards than samples.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">
    /// <paramref name="count"/> is negative, <paramref name="shardCount"/> is below 1, or
    /// <paramref name="shardIndex"/> is not in 0..<paramref name="shardCount"/>-1.
    /// </exception>
    public static int[] ShardIndices(int count, int shardIndex, int shardCount, ulong seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ValidateShard(shardIndex, shardCount);

        int[] permutation = new int[count];
        for (int i = 0; i < count; i++)
        {
            permutation[i] = i;
        }
        SeededRandom.Derive(seed, ShardStream).Shuffle(permutation.AsSpan());

        // Shard i is [floor(i*count/n), floor((i+1)*count/n)): sizes are floor or ceil of count/n.
        int start = (int)((long)shardIndex * count / shardCount);
        int end = (int)((long)(shardIndex + 1) * count / shardCount);
        return permutation[start..end];
    }

    /// <summary>Throws unless 1 ≤ <paramref name="shardCount"/> and 0 ≤ <paramref name="shardIndex"/> &lt; <paramref name="shardCount"/>.</summary>
    internal static void ValidateShard(int shardIndex, int shardCount)
    {
        if (shardCount < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(shardCount), shardCount, $"The shard count is {shardCount}; it must be at least 1.");
        }
        if (shardIndex < 0 || shardIndex >= shardCount)
        {
            throw new ArgumentOutOfRangeException(
                nameof(shardIndex), shardIndex, $"The shard index is {shardIndex}; it must be in 0..{shardCount - 1} for {shardCount} shards.");
        }
    }
}
