using System.Globalization;
using Cluster.Data;
using Cluster.Layers;
using Cluster.Tensors;

namespace Cluster.Models;

/// <summary>
/// A network described as text, one layer per line (or separated by ';'), for example
/// <code>
/// input 1 28 28
/// conv2d 32 3
/// relu
/// maxpool2d 2
/// flatten
/// dense 10
/// loss cross-entropy
/// </code>
/// Layer lines: <c>conv2d FILTERS KERNEL [stride=1] [pad=0] [init=he|xavier]</c>,
/// <c>maxpool2d SIZE [stride=SIZE] [pad=0]</c>, <c>avgpool2d SIZE [stride=SIZE] [pad=0]</c>,
/// <c>dense UNITS [init=he|xavier]</c>, <c>dropout P</c>, <c>relu</c>, <c>leakyrelu [slope=0.01]</c>,
/// <c>sigmoid</c>, <c>tanh</c>, <c>flatten</c>, <c>reshape D1 D2 ...</c>, <c>batchnorm1d</c>, <c>batchnorm2d</c>,
/// <c>residual FILTERS [stride=1]</c>, <c>globalavgpool2d</c>, and the recurrent layers
/// <c>rnn|lstm|gru HIDDEN [return=last|sequence]</c>, which take [steps, features]. <c>#</c> starts a comment. The loss defaults to
/// cross-entropy. The same text is stored in checkpoints, so a checkpoint rebuilds its own model.
/// </summary>
public sealed class ModelSpec
{
    private ModelSpec(string? name, int[] inputShape, IReadOnlyList<string> layers, string loss)
    {
        Name = name;
        InputShape = inputShape;
        LayerLines = layers;
        LossName = loss;
    }

    /// <summary>The preset name, when the spec came from one.</summary>
    public string? Name { get; }

    /// <summary>Per-sample input shape, such as [1, 28, 28].</summary>
    public int[] InputShape { get; }

    /// <summary>The layer lines, in order.</summary>
    public IReadOnlyList<string> LayerLines { get; }

    /// <summary>The loss: <c>cross-entropy</c> or <c>mse</c>.</summary>
    public string LossName { get; }

    /// <summary>Parses spec text; throws <see cref="ModelSpecException"/> naming the bad line.</summary>
    public static ModelSpec Parse(string text, string? name = null)
    {
        int[]? input = null;
        string loss = "cross-entropy";
        var layers = new List<string>();
        foreach (string raw in text.Split('\n', ';'))
        {
            int hash = raw.IndexOf('#', StringComparison.Ordinal);
            string line = string.Join(' ', (hash >= 0 ? raw[..hash] : raw).Split(' ', '\t', '\r').Where(t => t.Length > 0));
            if (line.Length == 0)
            {
                continue;
            }
            string[] tokens = line.Split(' ');
            switch (tokens[0])
            {
                case "input":
                    input = tokens.Skip(1).Select(t => ParseInt(t, line)).ToArray();
                    if (input.Length == 0 || input.Any(d => d < 1))
                    {
                        throw new ModelSpecException($"model spec line '{line}': input needs one or more positive sizes, such as 'input 1 28 28'");
                    }
                    break;
                case "loss":
                    loss = tokens.Length == 2 ? tokens[1] : throw new ModelSpecException($"model spec line '{line}': write 'loss cross-entropy' or 'loss mse'");
                    _ = Loss.Create(loss);
                    break;
                default:
                    _ = CreateLayer(line);
                    layers.Add(line);
                    break;
            }
        }
        if (input is null)
        {
            throw new ModelSpecException("model spec has no 'input' line, such as 'input 1 28 28'");
        }
        if (layers.Count == 0)
        {
            throw new ModelSpecException("model spec has no layers");
        }
        var spec = new ModelSpec(name, input, layers, loss);
        spec.CreateLayers();
        return spec;
    }

    /// <summary>Creates fresh layers for this spec, built for its input shape.</summary>
    public List<Layer> CreateLayers()
    {
        var layers = new List<Layer>(LayerLines.Count);
        int[] shape = InputShape;
        foreach (string line in LayerLines)
        {
            var layer = CreateLayer(line);
            try
            {
                layer.Build(shape);
            }
            catch (ModelSpecException e)
            {
                throw new ModelSpecException($"model spec line '{line}': {e.Message}");
            }
            shape = layer.OutputShape;
            layers.Add(layer);
        }
        return layers;
    }

    /// <summary>
    /// Throws <see cref="ModelSpecException"/> when the samples of <paramref name="data"/> do not
    /// have as many values as the model's input (such as an LSTM preset, which reads 28×28 images
    /// as 28 steps, given 32×32 images).
    /// </summary>
    public void RequireFits(FashionMnist data)
    {
        var images = data.Train;
        if (images.SampleSize != Tensor.Product(InputShape))
        {
            throw new ModelSpecException(
                $"model '{Name ?? "spec"}' takes inputs of shape {Tensor.ShapeText(InputShape)} ({Tensor.Product(InputShape)} values) " +
                $"but the images of {data.Source} are {Tensor.ShapeText([images.Channels, images.Height, images.Width])} ({images.SampleSize} values)");
        }
    }

    /// <summary>The canonical text of this spec (what checkpoints store).</summary>
    public string ToText()
    {
        var lines = new List<string> { "input " + string.Join(' ', InputShape) };
        lines.AddRange(CreateLayers().Select(l => l.Spec));
        lines.Add("loss " + LossName);
        return string.Join('\n', lines) + "\n";
    }

    private static Layer CreateLayer(string line)
    {
        string[] tokens = line.Split(' ');
        var positional = tokens.Skip(1).Where(t => !t.Contains('=', StringComparison.Ordinal)).ToArray();
        var options = tokens.Skip(1).Where(t => t.Contains('=', StringComparison.Ordinal))
            .Select(t => t.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv[1]);
        string kind = tokens[0];
        var allowed = kind switch
        {
            "conv2d" => new[] { "stride", "pad", "init" },
            "maxpool2d" or "avgpool2d" => ["stride", "pad"],
            "dense" => ["init"],
            "leakyrelu" => ["slope"],
            "batchnorm1d" or "batchnorm2d" => ["momentum", "eps"],
            "residual" => ["stride"],
            "rnn" or "lstm" or "gru" => ["return"],
            "reshape" => [],
            "dropout" or "relu" or "sigmoid" or "tanh" or "flatten" or "globalavgpool2d" => [],
            _ => throw new ModelSpecException($"model spec line '{line}': unknown layer '{kind}'; known: conv2d, maxpool2d, avgpool2d, globalavgpool2d, dense, dropout, batchnorm1d, batchnorm2d, residual, relu, leakyrelu, sigmoid, tanh, flatten, reshape, rnn, lstm, gru"),
        };
        foreach (string key in options.Keys.Where(k => !allowed.Contains(k)))
        {
            throw new ModelSpecException($"model spec line '{line}': unknown option '{key}'" + (allowed.Length > 0 ? $"; {kind} takes {string.Join(", ", allowed)}" : $"; {kind} takes none"));
        }
        int Positional(int index, string what) => index < positional.Length
            ? ParseInt(positional[index], line)
            : throw new ModelSpecException($"model spec line '{line}': {kind} needs {what}");
        float OptionFloat(string key, float fallback) => options.TryGetValue(key, out var v) ? ParseFloat(v, line) : fallback;
        int Option(string key, int fallback) => options.TryGetValue(key, out var v) ? ParseInt(v, line) : fallback;
        Initializer Init() => options.TryGetValue("init", out var v)
            ? v switch
            {
                "he" => Initializer.He,
                "xavier" => Initializer.Xavier,
                _ => throw new ModelSpecException($"model spec line '{line}': unknown init '{v}', use he or xavier"),
            }
            : Initializer.He;
        int expected = kind switch
        {
            "conv2d" => 2,
            "maxpool2d" or "avgpool2d" or "dense" or "dropout" or "residual" or "rnn" or "lstm" or "gru" => 1,
            "reshape" => positional.Length,
            _ => 0,
        };
        if (positional.Length > expected)
        {
            throw new ModelSpecException($"model spec line '{line}': {kind} takes {expected} value(s), got {positional.Length}");
        }
        RecurrentOutput Returns() => options.TryGetValue("return", out var v)
            ? v switch
            {
                "last" => RecurrentOutput.Last,
                "sequence" => RecurrentOutput.Sequence,
                _ => throw new ModelSpecException($"model spec line '{line}': unknown return '{v}', use last or sequence"),
            }
            : RecurrentOutput.Last;
        try
        {
            return kind switch
            {
                "conv2d" => new Conv2D(Positional(0, "a number of filters"), Positional(1, "a kernel size"), Option("stride", 1), Option("pad", 0), Init()),
                "maxpool2d" => new MaxPool2D(Positional(0, "a window size"), options.ContainsKey("stride") ? Option("stride", 0) : null, Option("pad", 0)),
                "avgpool2d" => new AvgPool2D(Positional(0, "a window size"), options.ContainsKey("stride") ? Option("stride", 0) : null, Option("pad", 0)),
                "dense" => new Dense(Positional(0, "a number of units"), Init()),
                "dropout" => new Dropout(positional.Length == 1 ? ParseFloat(positional[0], line) : throw new ModelSpecException($"model spec line '{line}': dropout needs a probability")),
                "relu" => new ReLU(),
                "leakyrelu" => new LeakyReLU(options.TryGetValue("slope", out var s) ? ParseFloat(s, line) : 0.01f),
                "sigmoid" => new Sigmoid(),
                "tanh" => new Tanh(),
                "flatten" => new Flatten(),
                "batchnorm2d" => new BatchNorm2D(OptionFloat("momentum", 0.1f), OptionFloat("eps", 1e-5f)),
                "batchnorm1d" => new BatchNorm1D(OptionFloat("momentum", 0.1f), OptionFloat("eps", 1e-5f)),
                "globalavgpool2d" => new GlobalAvgPool2D(),
                "residual" => new ResidualBlock(Positional(0, "a number of filters"), Option("stride", 1)),
                "reshape" => new Reshape(positional.Select(t => ParseInt(t, line)).ToArray()),
                "rnn" => new Rnn(Positional(0, "a number of hidden units"), Returns()),
                "lstm" => new Lstm(Positional(0, "a number of hidden units"), Returns()),
                "gru" => new Gru(Positional(0, "a number of hidden units"), Returns()),
                _ => throw new ModelSpecException($"model spec line '{line}': unknown layer '{kind}'; known: conv2d, maxpool2d, avgpool2d, globalavgpool2d, dense, dropout, batchnorm1d, batchnorm2d, residual, relu, leakyrelu, sigmoid, tanh, flatten, reshape, rnn, lstm, gru"),
            };
        }
        catch (ModelSpecException e) when (!e.Message.StartsWith("model spec line", StringComparison.Ordinal))
        {
            throw new ModelSpecException($"model spec line '{line}': {e.Message}");
        }
    }

    private static int ParseInt(string token, string line) =>
        int.TryParse(token, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v)
            ? v
            : throw new ModelSpecException($"model spec line '{line}': '{token}' is not an integer");

    private static float ParseFloat(string token, string line) =>
        float.TryParse(token, NumberStyles.Float, CultureInfo.InvariantCulture, out float v)
            ? v
            : throw new ModelSpecException($"model spec line '{line}': '{token}' is not a number");
}
