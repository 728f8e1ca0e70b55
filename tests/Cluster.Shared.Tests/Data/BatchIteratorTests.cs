using Cluster.Data;

namespace Cluster.Tests.Data;

public sealed class BatchIteratorTests
{
    private const int SampleSize = 2 * 3 * 2;

    [Theory]
    [InlineData(0, 1)]
    [InlineData(0, 3)]
    [InlineData(1, 3)]
    [InlineData(2, 3)]
    public void An_epoch_visits_every_sample_of_the_shard_once(int shardIndex, int shardCount)
    {
        Dataset data = NumberedDataset(50);
        var iterator = new BatchIterator(data, batchSize: 8, seed: 11, shardIndex: shardIndex, shardCount: shardCount);

        int[] visited = Epoch(iterator, epoch: 0, batchSize: 8);

        Assert.Equal(iterator.SampleCount, visited.Length);
        Assert.Equal(Sharding.ShardIndices(50, shardIndex, shardCount, seed: 11).Order(), visited.Order());
    }

    [Fact]
    public void Same_seed_and_epoch_give_the_same_order()
    {
        Dataset data = NumberedDataset(40);

        int[] first = Epoch(new BatchIterator(data, 6, seed: 5), epoch: 3, batchSize: 6);
        int[] second = Epoch(new BatchIterator(data, 6, seed: 5), epoch: 3, batchSize: 6);

        Assert.Equal(first, second);
    }

    [Fact]
    public void Different_epochs_and_seeds_give_different_orders()
    {
        Dataset data = NumberedDataset(40);
        var iterator = new BatchIterator(data, 6, seed: 5);

        int[] epoch0 = Epoch(iterator, epoch: 0, batchSize: 6);
        int[] epoch1 = Epoch(iterator, epoch: 1, batchSize: 6);
        int[] otherSeed = Epoch(new BatchIterator(data, 6, seed: 6), epoch: 0, batchSize: 6);

        Assert.NotEqual(epoch0, epoch1);
        Assert.NotEqual(epoch0, otherSeed);
        Assert.Equal(epoch0, Epoch(iterator, epoch: 0, batchSize: 6));
    }

    [Fact]
    public void Without_shuffle_the_order_is_ascending()
    {
        Dataset data = NumberedDataset(13);

        Assert.Equal(Enumerable.Range(0, 13), Epoch(new BatchIterator(data, 4, seed: 9, shuffle: false), epoch: 2, batchSize: 4));
        int[] shard = Epoch(new BatchIterator(data, 4, seed: 9, shuffle: false, shardIndex: 1, shardCount: 2), epoch: 0, batchSize: 4);
        Assert.Equal(shard.Order(), shard);
    }

    [Fact]
    public void The_last_batch_is_smaller_and_then_the_epoch_ends()
    {
        Dataset data = NumberedDataset(23);
        var iterator = new BatchIterator(data, batchSize: 5, seed: 1);
        float[] images = new float[5 * SampleSize];
        int[] labels = new int[5];

        Assert.Equal(23, iterator.SampleCount);
        Assert.Equal(5, iterator.BatchesPerEpoch);
        iterator.StartEpoch(0);
        int[] sizes = Enumerable.Range(0, 6).Select(_ => iterator.Next(images, labels)).ToArray();

        Assert.Equal([5, 5, 5, 5, 3, 0], sizes);
    }

    [Fact]
    public void Labels_match_the_images_they_are_copied_with()
    {
        Dataset data = NumberedDataset(30);
        var iterator = new BatchIterator(data, batchSize: 7, seed: 4, shardIndex: 1, shardCount: 2);
        float[] images = new float[7 * SampleSize];
        int[] labels = new int[7];
        iterator.StartEpoch(0);

        int count;
        while ((count = iterator.Next(images, labels)) > 0)
        {
            for (int i = 0; i < count; i++)
            {
                int sample = (int)images[i * SampleSize];
                Assert.Equal(data.Image(sample), images.AsSpan(i * SampleSize, SampleSize));
                Assert.Equal(data.Labels[sample], labels[i]);
            }
        }
    }

    [Fact]
    public void Next_allocates_nothing()
    {
        Dataset data = NumberedDataset(200);
        var iterator = new BatchIterator(data, batchSize: 16, seed: 2);
        float[] images = new float[16 * SampleSize];
        int[] labels = new int[16];
        iterator.StartEpoch(0);
        iterator.Next(images, labels); // warm up

        long before = GC.GetAllocatedBytesForCurrentThread();
        while (iterator.Next(images, labels) > 0)
        {
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
    }

    [Fact]
    public void Batch_sizes_and_buffers_are_validated()
    {
        Dataset data = NumberedDataset(10);

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new BatchIterator(data, batchSize: 0, seed: 0));
        Assert.Equal("batchSize", error.ParamName);
        Assert.Contains("at least 1", error.Message, StringComparison.Ordinal);
        Assert.Equal("shardIndex", Assert.Throws<ArgumentOutOfRangeException>(() => new BatchIterator(data, 2, 0, shardIndex: 3, shardCount: 3)).ParamName);

        var iterator = new BatchIterator(data, batchSize: 4, seed: 0);
        Assert.Throws<InvalidOperationException>(() => iterator.Next(new float[4 * SampleSize], new int[4]));
        iterator.StartEpoch(0);
        Assert.Throws<ArgumentException>(() => iterator.Next(new float[(4 * SampleSize) - 1], new int[4]));
        Assert.Throws<ArgumentException>(() => iterator.Next(new float[4 * SampleSize], new int[3]));
        Assert.Throws<ArgumentOutOfRangeException>(() => iterator.StartEpoch(-1));
    }

    /// <summary>Runs one epoch and returns the sample numbers in the order they were dealt.</summary>
    private static int[] Epoch(BatchIterator iterator, int epoch, int batchSize)
    {
        float[] images = new float[batchSize * SampleSize];
        int[] labels = new int[batchSize];
        var visited = new List<int>();
        iterator.StartEpoch(epoch);
        int count;
        int batches = 0;
        while ((count = iterator.Next(images, labels)) > 0)
        {
            batches++;
            for (int i = 0; i < count; i++)
            {
                visited.Add((int)images[i * SampleSize]);
            }
        }
        Assert.Equal(iterator.BatchesPerEpoch, batches);
        return [.. visited];
    }

    /// <summary>A dataset whose sample i has every pixel equal to i and label i % 7.</summary>
    private static Dataset NumberedDataset(int count)
    {
        float[] images = new float[count * SampleSize];
        for (int i = 0; i < images.Length; i++)
        {
            images[i] = i / SampleSize;
        }
        byte[] labels = Enumerable.Range(0, count).Select(i => (byte)(i % 7)).ToArray();
        return new Dataset(images, labels, channels: 2, height: 3, width: 2, classes: 7);
    }
}
