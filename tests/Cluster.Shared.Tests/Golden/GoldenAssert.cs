namespace Cluster.Tests.Golden;

/// <summary>
/// Compares Cluster's numbers with PyTorch's: each value must satisfy
/// |actual − expected| ≤ 1e-4 · max(1, |expected|), an absolute tolerance for values under 1 and a
/// relative one above. Both compute in float32, so honest differences are rounding, about 1e-6.
/// </summary>
internal static class GoldenAssert
{
    /// <summary>The tolerance: 1e-4, relative for values above 1 and absolute below.</summary>
    public const double Tolerance = 1e-4;

    /// <summary>Asserts every element of <paramref name="actual"/> is within tolerance of <paramref name="expected"/>; the message names the case, the tensor, the index and both values.</summary>
    public static void Close(string caseName, string tensor, ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        Assert.True(actual.Length == expected.Length, $"{caseName}: {tensor} has {actual.Length} values but PyTorch gives {expected.Length}");
        for (int i = 0; i < expected.Length; i++)
        {
            Close(caseName, $"{tensor}[{i}]", actual[i], expected[i]);
        }
    }

    /// <summary>Asserts a tensor's values and shape against a golden tensor.</summary>
    public static void Close(string caseName, string tensor, ReadOnlySpan<int> shape, ReadOnlySpan<float> actual, GoldenTensor expected)
    {
        Assert.True(shape.SequenceEqual(expected.Shape), $"{caseName}: {tensor} has shape [{string.Join(", ", shape.ToArray())}] but PyTorch gives [{string.Join(", ", expected.Shape)}]");
        Close(caseName, tensor, actual, expected.Values);
    }

    /// <summary>Asserts one value.</summary>
    public static void Close(string caseName, string what, double actual, double expected)
    {
        double error = Math.Abs(actual - expected);
        Assert.True(
            error <= Tolerance * Math.Max(1, Math.Abs(expected)),
            $"{caseName}: {what} is {actual:G9} but PyTorch gives {expected:G9} (off by {error:G3})");
    }
}
