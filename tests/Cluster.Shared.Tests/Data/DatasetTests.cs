using Cluster.Data;

namespace Cluster.Tests.Data;

public sealed class DatasetTests
{
    [Fact]
    public void Image_returns_the_sample_slice()
    {
        var data = new Dataset([1, 2, 3, 4, 5, 6], [0, 1, 2], channels: 1, height: 1, width: 2, classes: 3);

        Assert.Equal(3, data.Count);
        Assert.Equal(2, data.SampleSize);
        Assert.Equal([3f, 4f], data.Image(1).ToArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => data.Image(3));
    }

    [Fact]
    public void Take_copies_the_first_samples()
    {
        var data = new Dataset([1, 2, 3, 4, 5, 6], [0, 1, 2], channels: 1, height: 2, width: 1, classes: 3);

        Dataset first = data.Take(2);
        data.Images[0] = 99;

        Assert.Equal([1f, 2f, 3f, 4f], first.Images);
        Assert.Equal([0, 1], first.Labels);
        Assert.Equal((1, 2, 1, 3), (first.Channels, first.Height, first.Width, first.Classes));
        Assert.Throws<ArgumentOutOfRangeException>(() => data.Take(4));
    }

    [Fact]
    public void Constructor_rejects_inconsistent_arrays_and_labels()
    {
        Assert.Throws<ArgumentException>(() => new Dataset(new float[5], [0, 1], 1, 1, 2, 2));
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new Dataset(new float[4], [0, 2], 1, 1, 2, 2));
        Assert.Contains("Label 2 of sample 1", error.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => new Dataset([], [], 0, 1, 1, 1));
    }

    [Fact]
    public void ValidationSplitIsSeededDisjointAndSized()
    {
        var data = new Dataset(Enumerable.Range(0, 100).Select(i => (float)i).ToArray(), Enumerable.Range(0, 100).Select(i => (byte)(i % 10)).ToArray(), 1, 1, 1, 10);
        var (train, validation) = data.SplitValidation(0.1, 3);
        Assert.Equal(90, train.Count);
        Assert.Equal(10, validation.Count);
        Assert.Empty(train.Images.Intersect(validation.Images));
        Assert.Equal(validation.Images, data.SplitValidation(0.1, 3).Validation.Images);
        Assert.NotEqual(validation.Images, data.SplitValidation(0.1, 4).Validation.Images);
        Assert.Throws<ArgumentOutOfRangeException>(() => data.SplitValidation(1.0, 3));
    }
}
