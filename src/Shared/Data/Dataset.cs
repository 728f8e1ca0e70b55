namespace Cluster.Data;

/// <summary>
/// A labelled image set held in memory: float pixels, already normalised, stored sample after
/// sample, each sample in CHW order (so a batch of samples is NCHW).
/// </summary>
public sealed class Dataset
{
    /// <summary>Wraps the arrays without copying them.</summary>
    /// <param name="images">The pixels, <c>labels.Length * channels * height * width</c> floats.</param>
    /// <param name="labels">The class of each sample, each below <paramref name="classes"/>.</param>
    /// <param name="channels">Channels per image (1 for grey-scale).</param>
    /// <param name="height">Rows per image, in pixels.</param>
    /// <param name="width">Columns per image, in pixels.</param>
    /// <param name="classes">The number of classes the labels index.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive or a label is not a class.</exception>
    /// <exception cref="ArgumentException">The image array does not hold exactly one image per label.</exception>
    public Dataset(float[] images, byte[] labels, int channels, int height, int width, int classes)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(channels);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(classes);
        long sampleSize = (long)channels * height * width;
        if (sampleSize * labels.Length != images.Length)
        {
            throw new ArgumentException(
                $"{labels.Length} labels of {channels}x{height}x{width} images need {sampleSize * labels.Length} floats, but the image array holds {images.Length}.",
                nameof(images));
        }
        for (int i = 0; i < labels.Length; i++)
        {
            if (labels[i] >= classes)
            {
                throw new ArgumentOutOfRangeException(
                    nameof(labels), labels[i], $"Label {labels[i]} of sample {i} is not a class: expected 0 to {classes - 1}.");
            }
        }

        Images = images;
        Labels = labels;
        Channels = channels;
        Height = height;
        Width = width;
        Classes = classes;
        SampleSize = (int)sampleSize;
    }

    /// <summary>The number of samples.</summary>
    public int Count => Labels.Length;

    /// <summary>Channels per image (1 for grey-scale).</summary>
    public int Channels { get; }

    /// <summary>Rows per image, in pixels.</summary>
    public int Height { get; }

    /// <summary>Columns per image, in pixels.</summary>
    public int Width { get; }

    /// <summary>Floats per sample: <see cref="Channels"/> x <see cref="Height"/> x <see cref="Width"/>.</summary>
    public int SampleSize { get; }

    /// <summary>The number of classes; every label is below it.</summary>
    public int Classes { get; }

    /// <summary>All pixels, <see cref="Count"/> x <see cref="SampleSize"/> floats, sample after sample.</summary>
    public float[] Images { get; }

    /// <summary>The class of each sample.</summary>
    public byte[] Labels { get; }

    /// <summary>The pixels of sample <paramref name="index"/> (CHW), without copying.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is not in 0..<see cref="Count"/>-1.</exception>
    public ReadOnlySpan<float> Image(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        return Images.AsSpan(index * SampleSize, SampleSize);
    }

    /// <summary>A copy of the first <paramref name="count"/> samples (for quick runs and tests).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is not in 0..<see cref="Count"/>.</exception>
    public Dataset Take(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, Count);
        return new Dataset(
            Images.AsSpan(0, count * SampleSize).ToArray(),
            Labels.AsSpan(0, count).ToArray(),
            Channels,
            Height,
            Width,
            Classes);
    }

    /// <summary>The samples at <paramref name="indices"/>, in that order (copied).</summary>
    public Dataset Select(ReadOnlySpan<int> indices)
    {
        var images = new float[indices.Length * SampleSize];
        var labels = new byte[indices.Length];
        for (int i = 0; i < indices.Length; i++)
        {
            Image(indices[i]).CopyTo(images.AsSpan(i * SampleSize, SampleSize));
            labels[i] = Labels[indices[i]];
        }
        return new Dataset(images, labels, Channels, Height, Width, Classes);
    }

    /// <summary>
    /// Holds out a seeded random <paramref name="fraction"/> of the samples: returns the rest for
    /// training and the held-out part for validation (early stopping, model selection).
    /// </summary>
    public (Dataset Train, Dataset Validation) SplitValidation(double fraction, ulong seed)
    {
        if (!(fraction > 0 && fraction < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(fraction), $"validation fraction {fraction} must be in (0, 1)");
        }
        int[] order = Enumerable.Range(0, Count).ToArray();
        Tensors.SeededRandom.Derive(seed, 0x5EED_0F_7A1DUL).Shuffle(order.AsSpan());
        int held = Math.Max(1, (int)Math.Round(Count * fraction));
        return (Select(order.AsSpan(held)), Select(order.AsSpan(0, held)));
    }
}
