using Cluster.Models;
using Cluster.Tensors;

namespace Cluster.Tests.Checkpoints;

/// <summary>Models and inputs the checkpoint tests share.</summary>
internal static class CheckpointModels
{
    /// <summary>A preset model initialised from <paramref name="seed"/>.</summary>
    public static Sequential Create(string preset, ulong seed)
    {
        var model = new Sequential(ModelPresets.Resolve(preset));
        model.Initialize(seed);
        return model;
    }

    /// <summary>A batch of Gaussian noise shaped for <paramref name="model"/>'s input.</summary>
    public static Tensor RandomBatch(Sequential model, int batch, ulong seed)
    {
        var input = Tensor.Zeros([batch, .. model.InputShape]);
        var random = new SeededRandom(seed);
        var values = input.Span;
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = random.NextGaussian();
        }
        return input;
    }

    /// <summary>The bit patterns of <paramref name="values"/>, so that comparisons are exact (NaN and -0 included).</summary>
    public static int[] Bits(ReadOnlySpan<float> values)
    {
        var bits = new int[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            bits[i] = BitConverter.SingleToInt32Bits(values[i]);
        }
        return bits;
    }
}
