using Cluster.Data;

namespace Cluster.Tests.Data;

public sealed class ShardingTests
{
    [Theory]
    [InlineData(103, 4)]
    [InlineData(10, 3)]
    [InlineData(60_000, 7)]
    [InlineData(5, 8)]
    [InlineData(9, 1)]
    [InlineData(0, 2)]
    public void Shards_are_disjoint_cover_every_index_and_differ_in_size_by_at_most_1(int count, int shards)
    {
        int[][] all = Enumerable.Range(0, shards).Select(i => Sharding.ShardIndices(count, i, shards, seed: 42)).ToArray();

        int[] union = all.SelectMany(shard => shard).ToArray();
        Assert.Equal(count, union.Length);
        Assert.Equal(Enumerable.Range(0, count), union.Order());
        int smallest = all.Min(shard => shard.Length);
        int largest = all.Max(shard => shard.Length);
        Assert.InRange(largest - smallest, 0, 1);
    }

    [Fact]
    public void Same_arguments_give_the_same_shard()
    {
        Assert.Equal(Sharding.ShardIndices(1000, 2, 5, seed: 7), Sharding.ShardIndices(1000, 2, 5, seed: 7));
    }

    [Fact]
    public void Different_seeds_give_different_shards()
    {
        Assert.NotEqual(
            Sharding.ShardIndices(1000, 0, 4, seed: 1).Order(),
            Sharding.ShardIndices(1000, 0, 4, seed: 2).Order());
    }

    [Fact]
    public void Shards_are_drawn_at_random_not_as_contiguous_ranges()
    {
        int[] shard = Sharding.ShardIndices(1000, 0, 4, seed: 3);

        Assert.True(shard.Max() - shard.Min() > 500, "a quarter of a shuffled 0..999 should span most of the range");
    }

    [Theory]
    [InlineData(-1, 2, "shardIndex")]
    [InlineData(2, 2, "shardIndex")]
    [InlineData(0, 0, "shardCount")]
    public void Invalid_shard_arguments_are_rejected(int shardIndex, int shardCount, string parameter)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => Sharding.ShardIndices(10, shardIndex, shardCount, seed: 0));

        Assert.Equal(parameter, error.ParamName);
        Assert.Contains(parameter == "shardIndex" ? shardIndex.ToString() : shardCount.ToString(), error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Negative_count_is_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Sharding.ShardIndices(-1, 0, 1, seed: 0));
    }
}
