using System.Globalization;
using Cluster.Tensors;

namespace Cluster.Data;

/// <summary>
/// Random, seeded changes to training images that keep their label: a shift of up to
/// <see cref="Shift"/> pixels in each direction (a random crop of the image padded with
/// background on every side) and a horizontal flip with probability ½, in that order, as
/// torchvision's RandomCrop(padding) and RandomHorizontalFlip do. Off unless asked for; test and
/// validation images are never changed.
/// </summary>
public sealed class Augmentation
{
    /// <summary>The text form, for flags and messages.</summary>
    public const string Syntax = "shift:N (random crop with N pixels of padding), flip (horizontal, p = ½), or both: shift:2,flip";

    private readonly float[] _scratch;
    private readonly int _channels;
    private readonly int _height;
    private readonly int _width;

    private Augmentation(int shift, bool flip, int channels, int height, int width, float background)
    {
        Shift = shift;
        Flip = flip;
        Background = background;
        _channels = channels;
        _height = height;
        _width = width;
        _scratch = new float[channels * height * width];
    }

    /// <summary>Largest shift in pixels, in each direction; 0 for none.</summary>
    public int Shift { get; }

    /// <summary>Whether images are mirrored left–right half of the time.</summary>
    public bool Flip { get; }

    /// <summary>The value the padding shows, in normalised units: where a black pixel lands.</summary>
    public float Background { get; }

    /// <summary>
    /// Parses <paramref name="text"/> (see <see cref="Syntax"/>) for images of the given shape;
    /// throws <see cref="ArgumentException"/> naming the bad part.
    /// </summary>
    public static Augmentation Parse(string text, int channels, int height, int width, float background)
    {
        (int shift, bool flip) = ParseParts(text, Math.Min(height, width) - 1);
        return new Augmentation(shift, flip, channels, height, width, background);
    }

    /// <summary>Checks the form of <paramref name="text"/> before the image size is known; throws <see cref="ArgumentException"/> naming the bad part.</summary>
    public static void CheckSyntax(string text) => ParseParts(text, int.MaxValue);

    private static (int Shift, bool Flip) ParseParts(string text, int maxShift)
    {
        int shift = 0;
        bool flip = false;
        foreach (string part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            if (part == "flip")
            {
                flip = true;
            }
            else if (part.StartsWith("shift:", StringComparison.Ordinal)
                && int.TryParse(part.AsSpan(6), NumberStyles.Integer, CultureInfo.InvariantCulture, out int pixels)
                && pixels >= 1 && pixels <= maxShift)
            {
                shift = pixels;
            }
            else
            {
                string range = maxShift == int.MaxValue ? "of 1 pixel or more" : $"from 1 to {maxShift} pixels";
                throw new ArgumentException($"'{part}' in '{text}' is not an augmentation: use {Syntax}, with a shift {range}");
            }
        }
        return (shift, flip);
    }

    /// <summary>The canonical text form, such as <c>shift:2,flip</c>.</summary>
    public override string ToString() => string.Join(',', new[] { Shift > 0 ? $"shift:{Shift}" : null, Flip ? "flip" : null }.Where(p => p is not null));

    /// <summary>Changes each of the first <paramref name="count"/> images of <paramref name="images"/> in place, drawing from <paramref name="random"/>.</summary>
    public void Apply(Span<float> images, int count, SeededRandom random)
    {
        int plane = _height * _width, size = _channels * plane;
        for (int n = 0; n < count; n++)
        {
            int dy = Shift > 0 ? random.NextInt((2 * Shift) + 1) - Shift : 0;
            int dx = Shift > 0 ? random.NextInt((2 * Shift) + 1) - Shift : 0;
            bool mirror = Flip && (random.NextUInt64() & 1) == 1;
            if (dy == 0 && dx == 0 && !mirror)
            {
                continue;
            }
            var image = images.Slice(n * size, size);
            image.CopyTo(_scratch);
            for (int c = 0; c < _channels; c++)
            {
                var source = _scratch.AsSpan(c * plane, plane);
                var target = image.Slice(c * plane, plane);
                for (int y = 0; y < _height; y++)
                {
                    int sy = y + dy;
                    var row = target.Slice(y * _width, _width);
                    if (sy < 0 || sy >= _height)
                    {
                        row.Fill(Background);
                        continue;
                    }
                    for (int x = 0; x < _width; x++)
                    {
                        // Output column x shows shifted column x, or its mirror image.
                        int sx = (mirror ? _width - 1 - x : x) + dx;
                        row[x] = sx < 0 || sx >= _width ? Background : source[(sy * _width) + sx];
                    }
                }
            }
        }
    }
}
