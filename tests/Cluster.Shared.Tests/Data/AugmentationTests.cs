using Cluster.Data;

namespace Cluster.Tests.Data;

public sealed class AugmentationTests
{
    private const int Side = 6;
    private const float Background = -0.5f;
    private static readonly bool[] Mirrors = [false, true];

    /// <summary>Images whose every pixel is distinct, so that any shift or flip is recognisable.</summary>
    private static Dataset DistinctImages(int count)
    {
        var images = new float[count * Side * Side];
        for (int i = 0; i < images.Length; i++)
        {
            images[i] = 1 + i;
        }
        return new Dataset(images, new byte[count], 1, Side, Side, classes: 10);
    }

    /// <summary>The image shifted by (dy, dx) and optionally mirrored, computed from the definition.</summary>
    private static float[] Expected(ReadOnlySpan<float> image, int dy, int dx, bool mirror)
    {
        var result = new float[Side * Side];
        for (int y = 0; y < Side; y++)
        {
            for (int x = 0; x < Side; x++)
            {
                int sy = y + dy, sx = (mirror ? Side - 1 - x : x) + dx;
                result[(y * Side) + x] = sy is < 0 or >= Side || sx is < 0 or >= Side ? Background : image[(sy * Side) + sx];
            }
        }
        return result;
    }

    [Fact]
    public void Every_image_is_a_shift_within_bounds_or_its_mirror_and_every_choice_occurs()
    {
        var data = DistinctImages(400);
        var iterator = new BatchIterator(data, 400, seed: 3, shuffle: false)
        {
            Augmentation = Augmentation.Parse("shift:2,flip", 1, Side, Side, Background),
        };
        var images = new float[400 * Side * Side];
        var labels = new int[400];
        iterator.StartEpoch(0);
        Assert.Equal(400, iterator.Next(images, labels));

        var seen = new HashSet<(int, int, bool)>();
        for (int n = 0; n < 400; n++)
        {
            var original = data.Image(n).ToArray();
            var actual = images.AsSpan(n * Side * Side, Side * Side).ToArray();
            var matches = (from dy in Enumerable.Range(-2, 5)
                           from dx in Enumerable.Range(-2, 5)
                           from mirror in Mirrors
                           where Expected(original, dy, dx, mirror).SequenceEqual(actual)
                           select (dy, dx, mirror)).ToList();
            Assert.True(matches.Count == 1, $"image {n} is not exactly one shift/flip of its original");
            seen.Add(matches[0]);
        }
        Assert.Equal(50, seen.Count);
    }

    [Fact]
    public void The_same_seed_and_epoch_give_the_same_images_and_another_epoch_other_ones()
    {
        var data = DistinctImages(64);
        float[] Draw(int epoch)
        {
            var iterator = new BatchIterator(data, 64, seed: 9) { Augmentation = Augmentation.Parse("shift:3,flip", 1, Side, Side, Background) };
            var images = new float[64 * Side * Side];
            iterator.StartEpoch(epoch);
            iterator.Next(images, new int[64]);
            return images;
        }

        Assert.Equal(Draw(1), Draw(1));
        Assert.NotEqual(Draw(1), Draw(2));
    }

    [Fact]
    public void Without_augmentation_batches_are_exact_copies()
    {
        var data = DistinctImages(10);
        var iterator = new BatchIterator(data, 10, seed: 1, shuffle: false);
        var images = new float[10 * Side * Side];
        iterator.StartEpoch(0);
        iterator.Next(images, new int[10]);

        Assert.Equal(data.Images, images);
    }

    [Theory]
    [InlineData("rotate", "'rotate'")]
    [InlineData("shift:0", "'shift:0'")]
    [InlineData("shift:6", "'shift:6'")]
    [InlineData("shift:two", "'shift:two'")]
    [InlineData("flip,", "''")]
    public void Bad_augmentations_are_named(string text, string named)
    {
        var error = Assert.Throws<ArgumentException>(() => Augmentation.Parse(text, 1, Side, Side, Background));

        Assert.Contains(named, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_canonical_text_round_trips()
    {
        Assert.Equal("shift:2,flip", Augmentation.Parse("flip,shift:2", 1, 28, 28, 0).ToString());
        Assert.Equal("flip", Augmentation.Parse("flip", 1, 28, 28, 0).ToString());
    }
}
