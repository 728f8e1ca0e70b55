namespace Cluster.Models;

/// <summary>The named models a user can pick with <c>--model NAME</c>.</summary>
public static class ModelPresets
{
    private static readonly Dictionary<string, string> Specs = new()
    {
        // 784-256-128-10 multilayer perceptron.
        ["mlp"] = """
            input 1 28 28
            flatten
            dense 256
            relu
            dense 128
            relu
            dense 10
            """,
        // The LeNet-style CNN of DESIGN.md: 225,034 parameters.
        ["lenet"] = """
            input 1 28 28
            conv2d 32 3
            relu
            maxpool2d 2
            conv2d 64 3
            relu
            maxpool2d 2
            flatten
            dense 128
            relu
            dense 10
            """,
        // A small residual CNN: a stem, three stages of two residual blocks with batch norm
        // (16, 32, 64 channels; 28→14→7), global average pooling and a classifier.
        ["resnet"] = """
            input 1 28 28
            conv2d 16 3 pad=1
            batchnorm2d
            relu
            residual 16
            residual 16
            residual 32 stride=2
            residual 32
            residual 64 stride=2
            residual 64
            globalavgpool2d
            dense 10
            """,
        // Each image read as 28 steps (rows) of 28 features; an LSTM of 128 units; a classifier
        // on its last state. 82,186 parameters.
        ["lstm"] = """
            input 1 28 28
            reshape 28 28
            lstm 128
            dense 10 init=xavier
            """,
        // The same with a GRU: 61,962 parameters.
        ["gru"] = """
            input 1 28 28
            reshape 28 28
            gru 128
            dense 10 init=xavier
            """,
    };

    /// <summary>The preset names.</summary>
    public static IReadOnlyCollection<string> Names => Specs.Keys;

    /// <summary>
    /// Resolves <paramref name="model"/>: a preset name, or the path of a spec file.
    /// Throws <see cref="ModelSpecException"/> for anything else.
    /// </summary>
    public static ModelSpec Resolve(string model)
    {
        if (Specs.TryGetValue(model, out var text))
        {
            return ModelSpec.Parse(text, model);
        }
        if (File.Exists(model))
        {
            return ModelSpec.Parse(File.ReadAllText(model), Path.GetFileNameWithoutExtension(model));
        }
        throw new ModelSpecException($"unknown model '{model}': use one of {string.Join(", ", Specs.Keys)} or the path of a model spec file");
    }
}
