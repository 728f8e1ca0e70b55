using System.Globalization;
using System.Security.Cryptography;

namespace Cluster.Data;

/// <summary>
/// Fashion-MNIST (28x28 grey-scale images of clothing in 10 classes), loaded either from a
/// directory holding the four standard IDX files (gzip'd or not) or from the subset embedded in
/// Cluster.Shared.dll, which lets training run on a machine with no copy of the full set. Pixels
/// are normalised with the statistics of the training split (see <see cref="Normalization"/>).
/// </summary>
public sealed class FashionMnist
{
    /// <summary>Where the full set is installed on Cluster machines; <see cref="Load"/> prefers it.</summary>
    public const string SystemDirectory = "/usr/share/datasets/fashion-mnist";

    /// <summary>The word that selects the embedded subset in <see cref="Load"/>.</summary>
    private const string EmbeddedName = "embedded";

    private const string ResourcePrefix = "Cluster.Data.Embedded.";
    private const string TrainImagesFile = "train-images-idx3-ubyte";
    private const string TrainLabelsFile = "train-labels-idx1-ubyte";
    private const string TestImagesFile = "t10k-images-idx3-ubyte";
    private const string TestLabelsFile = "t10k-labels-idx1-ubyte";
    private const string GzipExtension = ".gz";

    private static readonly string[] FileNames = [TrainImagesFile, TrainLabelsFile, TestImagesFile, TestLabelsFile];

    /// <summary>The class names, indexed by label.</summary>
    public static readonly string[] ClassNames =
    [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ];

    private FashionMnist(Dataset train, Dataset test, Normalization normalization, string source, string fingerprint)
    {
        Train = train;
        Test = test;
        Normalization = normalization;
        Source = source;
        Fingerprint = fingerprint;
    }

    /// <summary>The training split, normalised.</summary>
    public Dataset Train { get; }

    /// <summary>The test split, normalised with the training statistics.</summary>
    public Dataset Test { get; }

    /// <summary>The training-split statistics applied to both splits.</summary>
    public Normalization Normalization { get; }

    /// <summary>
    /// What the data is, whatever file it came from: 16 hex digits of the SHA-256 of the four
    /// arrays as read (shapes and raw bytes, before normalisation). Workers compare theirs with the
    /// server's, so that a machine holding other files (or none, and so the embedded subset) does
    /// not train on them unnoticed.
    /// </summary>
    public string Fingerprint { get; }

    /// <summary>Where the data came from, for logs: "DIRECTORY (N train / M test)" or "embedded subset (N train / M test)".</summary>
    public string Source { get; }

    /// <summary>
    /// Loads the data named by a command-line option: "embedded" selects the embedded subset, any
    /// other text is a directory path, and null (or blank) selects <see cref="SystemDirectory"/> if
    /// it holds the four files and the embedded subset otherwise. A given
    /// <paramref name="normalization"/> (the one a checkpoint was trained with) replaces the
    /// statistics of this training split, so a model sees inputs scaled as in its training.
    /// </summary>
    /// <exception cref="DataFormatException">The chosen files are missing or corrupt.</exception>
    public static FashionMnist Load(string? data, Normalization? normalization = null)
    {
        if (string.IsNullOrWhiteSpace(data))
        {
            return HoldsAllFiles(SystemDirectory) ? LoadDirectory(SystemDirectory, normalization) : LoadEmbedded(normalization);
        }
        return string.Equals(data, EmbeddedName, StringComparison.OrdinalIgnoreCase)
            ? LoadEmbedded(normalization)
            : LoadDirectory(data, normalization);
    }

    /// <summary>Loads the subset embedded in Cluster.Shared.dll (10,000 training and 2,000 test samples).</summary>
    /// <exception cref="DataFormatException">A resource is missing or corrupt (a broken build).</exception>
    public static FashionMnist LoadEmbedded(Normalization? normalization = null)
    {
        IdxArray[] arrays = new IdxArray[FileNames.Length];
        string[] sources = new string[FileNames.Length];
        for (int i = 0; i < FileNames.Length; i++)
        {
            string name = ResourcePrefix + FileNames[i] + GzipExtension;
            using Stream stream = typeof(FashionMnist).Assembly.GetManifestResourceStream(name)
                ?? throw new DataFormatException(
                    $"embedded resource '{name}' is missing from {typeof(FashionMnist).Assembly.GetName().Name}.dll; expected the four Fashion-MNIST subset files built in from data/fashion-mnist-subset/.");
            sources[i] = "embedded:" + FileNames[i] + GzipExtension;
            arrays[i] = IdxReader.Read(stream, sources[i]);
        }
        return Create(arrays, sources, normalization, (train, test) =>
            string.Create(CultureInfo.InvariantCulture, $"embedded subset ({train:N0} train / {test:N0} test)"));
    }

    /// <summary>
    /// Loads the four standard files from <paramref name="directory"/>: train-images-idx3-ubyte,
    /// train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each optionally
    /// with ".gz" (the uncompressed file is used when both exist).
    /// </summary>
    /// <exception cref="DataFormatException">The directory or a file is missing, or a file is corrupt.</exception>
    public static FashionMnist LoadDirectory(string directory, Normalization? normalization = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (!Directory.Exists(directory))
        {
            throw new DataFormatException(
                $"data directory '{directory}' does not exist; expected a directory holding {ExpectedFilesText()}.");
        }
        string?[] found = Array.ConvertAll(FileNames, name => FindFile(directory, name));
        string[] missing = FileNames.Where((_, i) => found[i] is null).ToArray();
        if (missing.Length > 0)
        {
            throw new DataFormatException(
                $"data directory '{directory}' is missing {string.Join(", ", missing.Select(name => $"'{name}[{GzipExtension}]'"))}; expected {ExpectedFilesText()}.");
        }
        string[] sources = Array.ConvertAll(found, path => path!);
        IdxArray[] arrays = Array.ConvertAll(sources, IdxReader.Read);
        string source = Path.GetFullPath(directory);
        return Create(arrays, sources, normalization, (train, test) => $"{source} ({train:N0} train / {test:N0} test)");
    }

    private static string ExpectedFilesText() =>
        $"the four Fashion-MNIST files {string.Join(", ", FileNames)} (each optionally {GzipExtension})";

    private static bool HoldsAllFiles(string directory) =>
        Directory.Exists(directory) && FileNames.All(name => FindFile(directory, name) is not null);

    private static string? FindFile(string directory, string name)
    {
        string raw = Path.Combine(directory, name);
        if (File.Exists(raw))
        {
            return raw;
        }
        string gzip = raw + GzipExtension;
        return File.Exists(gzip) ? gzip : null;
    }

    /// <summary>
    /// Checks the four arrays (in <see cref="FileNames"/> order, read from <paramref name="sources"/>)
    /// and builds the normalised splits.
    /// </summary>
    private static FashionMnist Create(IdxArray[] arrays, string[] sources, Normalization? given, Func<int, int, string> describeSource)
    {
        CheckPair(arrays[0], arrays[1], sources[0], sources[1]);
        CheckPair(arrays[2], arrays[3], sources[2], sources[3]);
        IdxArray trainImages = arrays[0];
        IdxArray testImages = arrays[2];
        int height = trainImages.Dimensions[1];
        int width = trainImages.Dimensions[2];
        if (testImages.Dimensions[1] != height || testImages.Dimensions[2] != width)
        {
            throw new DataFormatException(
                $"'{sources[2]}' holds {testImages.Dimensions[1]}x{testImages.Dimensions[2]} images; expected {height}x{width} like '{sources[0]}'.");
        }

        Normalization normalization = given ?? ComputeNormalization(trainImages.Data, sources[0]);
        float[] table = NormalizationTable(normalization);
        var train = new Dataset(Normalize(trainImages.Data, table), arrays[1].Data, 1, height, width, ClassNames.Length);
        var test = new Dataset(Normalize(testImages.Data, table), arrays[3].Data, 1, height, width, ClassNames.Length);
        return new FashionMnist(train, test, normalization, describeSource(train.Count, test.Count), FingerprintOf(arrays));
    }

    private static string FingerprintOf(IdxArray[] arrays)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> dimension = stackalloc byte[sizeof(int)];
        foreach (var array in arrays)
        {
            foreach (int d in array.Dimensions)
            {
                System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(dimension, d);
                hash.AppendData(dimension);
            }
            hash.AppendData(array.Data);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset().AsSpan(0, 8));
    }

    private static void CheckPair(IdxArray images, IdxArray labels, string imagesSource, string labelsSource)
    {
        if (images.Dimensions.Length != 3)
        {
            throw new DataFormatException(
                $"'{imagesSource}' has {images.Dimensions.Length} dimensions; expected 3 (count, rows, columns).");
        }
        if (labels.Dimensions.Length != 1)
        {
            throw new DataFormatException(
                $"'{labelsSource}' has {labels.Dimensions.Length} dimensions; expected 1 (count).");
        }
        if (images.Dimensions[0] != labels.Dimensions[0])
        {
            throw new DataFormatException(
                $"'{imagesSource}' holds {images.Dimensions[0]} images but '{labelsSource}' holds {labels.Dimensions[0]} labels; expected the same count.");
        }
        int bad = labels.Data.AsSpan().IndexOfAnyExceptInRange((byte)0, (byte)(ClassNames.Length - 1));
        if (bad >= 0)
        {
            throw new DataFormatException(
                $"'{labelsSource}' has label {labels.Data[bad]} at index {bad}; expected 0 to {ClassNames.Length - 1}.");
        }
    }

    /// <summary>Mean and population standard deviation of bytes / 255, exactly, from a histogram.</summary>
    private static Normalization ComputeNormalization(byte[] pixels, string file)
    {
        long[] histogram = new long[256];
        foreach (byte b in pixels)
        {
            histogram[b]++;
        }
        double sum = 0;
        double sumOfSquares = 0;
        for (int v = 0; v < histogram.Length; v++)
        {
            double x = v / 255.0;
            sum += histogram[v] * x;
            sumOfSquares += histogram[v] * x * x;
        }
        double mean = sum / pixels.Length;
        double variance = Math.Max(0, (sumOfSquares / pixels.Length) - (mean * mean));
        double stdDev = Math.Sqrt(variance);
        if (stdDev < 1e-6)
        {
            throw new DataFormatException(
                $"'{file}': every pixel has the value {mean * 255:0}; expected images with varying pixels.");
        }
        return new Normalization((float)mean, (float)stdDev);
    }

    private static float[] NormalizationTable(Normalization normalization)
    {
        float[] table = new float[256];
        for (int v = 0; v < table.Length; v++)
        {
            table[v] = (float)(((v / 255.0) - normalization.Mean) / normalization.StdDev);
        }
        return table;
    }

    private static float[] Normalize(byte[] pixels, float[] table)
    {
        float[] result = new float[pixels.Length];
        for (int i = 0; i < pixels.Length; i++)
        {
            result[i] = table[pixels[i]];
        }
        return result;
    }
}
