using Cluster.Data;

namespace Cluster.Tests.Data;

public sealed class FashionMnistTests : IDisposable
{
    private static readonly string[] FileNames =
        ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

    private static readonly Lazy<FashionMnist> Embedded = new(() => FashionMnist.LoadEmbedded());

    private readonly ScratchDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void Embedded_subset_has_10000_train_and_2000_test_images_of_28x28()
    {
        FashionMnist data = Embedded.Value;

        Assert.Equal(10_000, data.Train.Count);
        Assert.Equal(2_000, data.Test.Count);
        foreach (Dataset split in new[] { data.Train, data.Test })
        {
            Assert.Equal((1, 28, 28, 784, 10), (split.Channels, split.Height, split.Width, split.SampleSize, split.Classes));
            Assert.Equal(split.Count * 784, split.Images.Length);
        }
        Assert.Equal("embedded subset (10,000 train / 2,000 test)", data.Source);
    }

    [Fact]
    public void Embedded_labels_are_classes_and_every_class_is_present()
    {
        FashionMnist data = Embedded.Value;

        foreach (Dataset split in new[] { data.Train, data.Test })
        {
            Assert.All(split.Labels, label => Assert.InRange(label, 0, 9));
            Assert.Equal(Enumerable.Range(0, 10), split.Labels.Select(label => (int)label).Distinct().Order());
        }
    }

    [Fact]
    public void Embedded_training_pixels_are_normalised_to_mean_0_and_std_1()
    {
        FashionMnist data = Embedded.Value;

        (double mean, double std) = Statistics(data.Train.Images);

        Assert.InRange(mean, -1e-3, 1e-3);
        Assert.InRange(std, 1 - 1e-3, 1 + 1e-3);
        // Fashion-MNIST pixels average about 0.29 with a spread of about 0.35 once scaled to [0, 1].
        Assert.InRange(data.Normalization.Mean, 0.2f, 0.4f);
        Assert.InRange(data.Normalization.StdDev, 0.25f, 0.45f);
    }

    [Fact]
    public void Embedded_test_split_uses_the_training_statistics()
    {
        FashionMnist data = Embedded.Value;
        Normalization n = data.Normalization;

        // Every test pixel must be (byte / 255 - train mean) / train std for some byte value.
        Assert.All(data.Test.Images, x =>
        {
            double raw = ((x * (double)n.StdDev) + n.Mean) * 255;
            Assert.InRange(raw, -1e-3, 255 + 1e-3);
            Assert.InRange(Math.Abs(raw - Math.Round(raw)), 0, 1e-3);
        });
        Assert.Equal(-n.Mean / n.StdDev, data.Test.Images.Min(), 1e-5);
    }

    [Fact]
    public void Test_split_is_normalised_with_training_statistics_not_its_own()
    {
        // Training pixels are half 0 and half 255 (mean 0.5, std 0.5); every test pixel is 51 (0.2).
        WriteSet(_directory, train: 4, test: 3, trainPixel: i => (byte)(i % 2 == 0 ? 0 : 255), testPixel: _ => 51);

        FashionMnist data = FashionMnist.LoadDirectory(_directory.Path);

        Assert.Equal(0.5f, data.Normalization.Mean, 1e-6f);
        Assert.Equal(0.5f, data.Normalization.StdDev, 1e-6f);
        Assert.All(data.Test.Images, x => Assert.Equal((0.2f - 0.5f) / 0.5f, x, 1e-5f));
        Assert.All(data.Train.Images, x => Assert.Equal(1f, Math.Abs(x), 1e-5f));
    }

    [Fact]
    public void LoadDirectory_reads_raw_and_gzip_files_and_keeps_labels_with_images()
    {
        WriteSet(_directory, train: 5, test: 2, trainPixel: i => (byte)i, testPixel: i => (byte)(i * 3), gzip: [true, false, false, true]);

        FashionMnist data = FashionMnist.LoadDirectory(_directory.Path);

        Assert.Equal(5, data.Train.Count);
        Assert.Equal(2, data.Test.Count);
        Assert.Equal([0, 1, 2, 3, 4], data.Train.Labels);
        Assert.Equal([9, 8], data.Test.Labels);
        Assert.Equal($"{Path.GetFullPath(_directory.Path)} (5 train / 2 test)", data.Source);
    }

    [Fact]
    public void Load_picks_embedded_or_a_directory()
    {
        WriteSet(_directory, train: 3, test: 2, trainPixel: i => (byte)i, testPixel: i => (byte)i);

        Assert.Equal(Embedded.Value.Source, FashionMnist.Load("embedded").Source);
        Assert.Equal($"{Path.GetFullPath(_directory.Path)} (3 train / 2 test)", FashionMnist.Load(_directory.Path).Source);
    }

    [Fact]
    public void Load_without_a_choice_prefers_the_system_directory_when_it_holds_the_files()
    {
        bool installed = FileNames.All(name =>
            File.Exists(Path.Combine(FashionMnist.SystemDirectory, name)) ||
            File.Exists(Path.Combine(FashionMnist.SystemDirectory, name + ".gz")));

        FashionMnist data = FashionMnist.Load(null);

        Assert.Equal(installed ? $"{Path.GetFullPath(FashionMnist.SystemDirectory)} (60,000 train / 10,000 test)" : Embedded.Value.Source, data.Source);
    }

    [Fact]
    public void LoadDirectory_of_a_missing_directory_says_so()
    {
        string missing = Path.Combine(_directory.Path, "nowhere");

        var error = Assert.Throws<DataFormatException>(() => FashionMnist.LoadDirectory(missing));

        Assert.StartsWith($"data directory '{missing}' does not exist", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadDirectory_missing_a_file_names_it_and_lists_the_expected_files()
    {
        WriteSet(_directory, train: 3, test: 2, trainPixel: i => (byte)i, testPixel: i => (byte)i);
        File.Delete(Path.Combine(_directory.Path, "t10k-labels-idx1-ubyte"));

        var error = Assert.Throws<DataFormatException>(() => FashionMnist.LoadDirectory(_directory.Path));

        Assert.Contains($"'{_directory.Path}' is missing 't10k-labels-idx1-ubyte[.gz]'", error.Message, StringComparison.Ordinal);
        Assert.All(FileNames, name => Assert.Contains(name, error.Message, StringComparison.Ordinal));
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public void Image_and_label_counts_must_match()
    {
        WriteSet(_directory, train: 3, test: 2, trainPixel: i => (byte)i, testPixel: i => (byte)i);
        _directory.Write("train-labels-idx1-ubyte", IdxFiles.Build([2], [0, 1]));

        var error = Assert.Throws<DataFormatException>(() => FashionMnist.LoadDirectory(_directory.Path));

        Assert.Contains("holds 3 images", error.Message, StringComparison.Ordinal);
        Assert.Contains("holds 2 labels", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Labels_above_9_are_rejected()
    {
        WriteSet(_directory, train: 3, test: 2, trainPixel: i => (byte)i, testPixel: i => (byte)i);
        string path = _directory.Write("t10k-labels-idx1-ubyte", IdxFiles.Build([2], [4, 10]));

        var error = Assert.Throws<DataFormatException>(() => FashionMnist.LoadDirectory(_directory.Path));

        Assert.Contains($"'{path}' has label 10 at index 1", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Images_must_have_rank_3_and_labels_rank_1()
    {
        WriteSet(_directory, train: 3, test: 2, trainPixel: i => (byte)i, testPixel: i => (byte)i);
        _directory.Write("train-images-idx3-ubyte", IdxFiles.Build([3, 784], IdxFiles.Pattern(3 * 784)));

        var error = Assert.Throws<DataFormatException>(() => FashionMnist.LoadDirectory(_directory.Path));
        Assert.Contains("expected 3", error.Message, StringComparison.Ordinal);

        WriteSet(_directory, train: 3, test: 2, trainPixel: i => (byte)i, testPixel: i => (byte)i);
        _directory.Write("t10k-labels-idx1-ubyte", IdxFiles.Build([2, 1], [1, 2]));

        error = Assert.Throws<DataFormatException>(() => FashionMnist.LoadDirectory(_directory.Path));
        Assert.Contains("expected 1", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_fingerprint_names_the_arrays_not_the_files_they_came_from()
    {
        WriteSet(_directory, 20, 10, i => (byte)(i * 7), i => (byte)(i * 3));
        string plain = FashionMnist.LoadDirectory(_directory.Path).Fingerprint;
        WriteSet(_directory, 20, 10, i => (byte)(i * 7), i => (byte)(i * 3), gzip: [true, true, true, true]);
        string gzipped = FashionMnist.LoadDirectory(_directory.Path).Fingerprint;
        WriteSet(_directory, 20, 10, i => (byte)(i * 7), i => (byte)(i == 9 ? 4 : i * 3));
        string onePixelAway = FashionMnist.LoadDirectory(_directory.Path).Fingerprint;
        WriteSet(_directory, 20, 11, i => (byte)(i * 7), i => (byte)(i * 3));
        string oneImageMore = FashionMnist.LoadDirectory(_directory.Path).Fingerprint;

        Assert.Matches("^[0-9a-f]{16}$", plain);
        Assert.Equal(plain, gzipped);
        Assert.NotEqual(plain, onePixelAway);
        Assert.NotEqual(plain, oneImageMore);
        Assert.Equal(Embedded.Value.Fingerprint, FashionMnist.LoadEmbedded().Fingerprint);
        Assert.NotEqual(plain, Embedded.Value.Fingerprint);
    }

    [Fact]
    public void Class_names_follow_the_label_order()
    {
        Assert.Equal(10, FashionMnist.ClassNames.Length);
        Assert.Equal("T-shirt/top", FashionMnist.ClassNames[0]);
        Assert.Equal("Ankle boot", FashionMnist.ClassNames[9]);
    }

    /// <summary>
    /// Writes a 28x28 Fashion-MNIST-shaped set: image i's pixels are all <paramref name="trainPixel"/>(i)
    /// (or testPixel), training label i % 10 and test label 9 - i % 10.
    /// </summary>
    private static void WriteSet(
        ScratchDirectory directory, int train, int test, Func<int, byte> trainPixel, Func<int, byte> testPixel, bool[]? gzip = null)
    {
        const int pixels = 28 * 28;
        byte[][] contents =
        [
            IdxFiles.Build([train, 28, 28], Enumerable.Range(0, train * pixels).Select(p => trainPixel(p / pixels)).ToArray()),
            IdxFiles.Build([train], Enumerable.Range(0, train).Select(i => (byte)(i % 10)).ToArray()),
            IdxFiles.Build([test, 28, 28], Enumerable.Range(0, test * pixels).Select(p => testPixel(p / pixels)).ToArray()),
            IdxFiles.Build([test], Enumerable.Range(0, test).Select(i => (byte)(9 - (i % 10))).ToArray()),
        ];
        for (int i = 0; i < FileNames.Length; i++)
        {
            foreach (string stale in new[] { FileNames[i], FileNames[i] + ".gz" })
            {
                File.Delete(Path.Combine(directory.Path, stale));
            }
            if (gzip?[i] == true)
            {
                directory.Write(FileNames[i] + ".gz", IdxFiles.Gzip(contents[i]));
            }
            else
            {
                directory.Write(FileNames[i], contents[i]);
            }
        }
    }

    private static (double Mean, double StdDev) Statistics(float[] values)
    {
        double sum = 0;
        double sumOfSquares = 0;
        foreach (float v in values)
        {
            sum += v;
            sumOfSquares += (double)v * v;
        }
        double mean = sum / values.Length;
        return (mean, Math.Sqrt((sumOfSquares / values.Length) - (mean * mean)));
    }
}
