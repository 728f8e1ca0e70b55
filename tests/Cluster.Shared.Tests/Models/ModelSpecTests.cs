using Cluster.Models;
using Cluster.Tensors;

namespace Cluster.Tests.Models;

public sealed class ModelSpecTests
{
    [Fact]
    public void Lenet_has_225034_parameters_named_as_in_pytorch()
    {
        var model = new Sequential(ModelPresets.Resolve("lenet"));

        // conv 32·1·9+32, conv 64·32·9+64, dense 1600·128+128, dense 128·10+10.
        Assert.Equal(225_034, model.ParameterCount);
        Assert.Equal([10], model.OutputShape);
        Assert.Equal([1, 28, 28], model.InputShape);
        Assert.Equal(
            [
                ("0.weight", 0, "[32, 1, 3, 3]", true), ("0.bias", 288, "[32]", false),
                ("3.weight", 320, "[64, 32, 3, 3]", true), ("3.bias", 18_752, "[64]", false),
                ("7.weight", 18_816, "[128, 1600]", true), ("7.bias", 223_616, "[128]", false),
                ("9.weight", 223_744, "[10, 128]", true), ("9.bias", 225_024, "[10]", false),
            ],
            model.NamedParameters.Select(p => (p.Name, p.Offset, Tensor.ShapeText(p.Shape), p.Decays)));
    }

    [Fact]
    public void Mlp_has_235146_parameters()
    {
        var model = new Sequential(ModelPresets.Resolve("mlp"));

        Assert.Equal((784 * 256) + 256 + (256 * 128) + 128 + (128 * 10) + 10, model.ParameterCount);
        Assert.Equal(235_146, model.ParameterCount);
        Assert.Equal([10], model.OutputShape);
        Assert.Equal(["1.weight", "1.bias", "3.weight", "3.bias", "5.weight", "5.bias"], model.NamedParameters.Select(p => p.Name));
    }

    [Fact]
    public void Lstm_and_gru_presets_read_rows_as_steps_with_pytorch_names()
    {
        var lstm = new Sequential(ModelPresets.Resolve("lstm"));
        var gru = new Sequential(ModelPresets.Resolve("gru"));

        // LSTM: 4·128·(28 + 128) weights + 2·4·128 biases; GRU: 3 gate blocks; dense 128·10 + 10.
        Assert.Equal((4 * 128 * (28 + 128)) + (2 * 4 * 128) + 1290, lstm.ParameterCount);
        Assert.Equal(82_186, lstm.ParameterCount);
        Assert.Equal(61_962, gru.ParameterCount);
        Assert.Equal(["1.weight_ih_l0", "1.weight_hh_l0", "1.bias_ih_l0", "1.bias_hh_l0", "2.weight", "2.bias"], lstm.NamedParameters.Select(p => p.Name));
        Assert.Equal("[512, 28]", Tensor.ShapeText(lstm.NamedParameters[0].Shape));
        Assert.Equal("[384, 128]", Tensor.ShapeText(gru.NamedParameters[1].Shape));
    }

    [Fact]
    public void Recurrent_weights_start_uniform_in_plus_minus_one_over_sqrt_hidden()
    {
        var model = new Sequential(ModelPresets.Resolve("lstm"));
        model.Initialize(3);

        var weights = model.NamedParameters[1];
        var values = model.Parameters.AsSpan(weights.Offset, weights.Length).ToArray();
        float bound = 1f / MathF.Sqrt(128);
        Assert.All(values, v => Assert.InRange(v, -bound, bound));
        // Uniform on [-a, a] has standard deviation a/√3.
        Assert.InRange(Statistics(values).Std / (bound / Math.Sqrt(3)), 0.97, 1.03);
    }

    [Fact]
    public void Stacked_recurrent_layers_pass_every_step_on()
    {
        var model = new Sequential(ModelSpec.Parse("input 6 5\nlstm 8 return=sequence\ngru 4 return=sequence\nrnn 3\ndense 2"));

        Assert.Equal([6, 8], model.Layers[0].OutputShape);
        Assert.Equal([6, 4], model.Layers[1].OutputShape);
        Assert.Equal([3], model.Layers[2].OutputShape);
    }

    [Fact]
    public void The_same_seed_gives_the_same_parameters_and_another_seed_different_ones()
    {
        var spec = ModelPresets.Resolve("lenet");
        var a = new Sequential(spec);
        var b = new Sequential(spec);
        var c = new Sequential(spec);

        a.Initialize(42);
        b.Initialize(42);
        c.Initialize(43);

        Assert.Equal(a.Parameters, b.Parameters);
        Assert.NotEqual(a.Parameters, c.Parameters);
        var firstWeights = a.NamedParameters[0];
        Assert.NotEqual(a.Parameters.AsSpan(firstWeights.Offset, firstWeights.Length).ToArray(), c.Parameters.AsSpan(firstWeights.Offset, firstWeights.Length).ToArray());
    }

    [Fact]
    public void He_weights_have_std_sqrt_2_over_fan_in_and_biases_start_at_zero()
    {
        var model = new Sequential(ModelPresets.Resolve("mlp"));
        model.Initialize(7);

        foreach (var p in model.NamedParameters)
        {
            var values = model.Parameters.AsSpan(p.Offset, p.Length).ToArray();
            if (!p.Decays)
            {
                Assert.All(values, v => Assert.Equal(0f, v));
                continue;
            }
            int fanIn = p.Shape[1];
            (double mean, double std) = Statistics(values);
            Assert.InRange(std / Math.Sqrt(2.0 / fanIn), 0.95, 1.05);
            Assert.InRange(Math.Abs(mean), 0, 3 * std / Math.Sqrt(values.Length));
        }
    }

    [Fact]
    public void Xavier_weights_have_std_sqrt_2_over_fan_in_plus_fan_out()
    {
        var model = new Sequential(ModelSpec.Parse("input 3 16 16; conv2d 64 5 init=xavier; flatten; dense 300 init=xavier"));
        model.Initialize(9);

        var conv = model.NamedParameters[0];
        var dense = model.NamedParameters[2];
        // Convolution: fan_in = 3·5·5, fan_out = 64·5·5, as torch.nn.init computes them.
        Assert.InRange(Statistics(model.Parameters.AsSpan(conv.Offset, conv.Length).ToArray()).Std / Math.Sqrt(2.0 / (75 + 1600)), 0.95, 1.05);
        Assert.InRange(Statistics(model.Parameters.AsSpan(dense.Offset, dense.Length).ToArray()).Std / Math.Sqrt(2.0 / (64 * 12 * 12 + 300)), 0.95, 1.05);
    }

    [Theory]
    [InlineData("lenet")]
    [InlineData("mlp")]
    [InlineData("""
        input 3 12 10   # a comment
        conv2d 8 3 stride=2 pad=1 init=xavier
        leakyrelu slope=0.2
        avgpool2d 3 stride=1 pad=1
        maxpool2d 2 stride=1
        sigmoid; tanh; dropout 0.25
        reshape 8 20
        lstm 6 return=sequence
        gru 5 return=sequence
        rnn 4 return=last
        reshape 2 2
        flatten
        dense 7 init=xavier
        relu
        dense 3
        loss mse
        """)]
    public void Spec_text_round_trips(string specOrPreset)
    {
        var spec = ModelPresets.Names.Contains(specOrPreset) ? ModelPresets.Resolve(specOrPreset) : ModelSpec.Parse(specOrPreset);

        string text = spec.ToText();
        var again = ModelSpec.Parse(text);

        Assert.Equal(text, again.ToText());
        Assert.Equal(spec.InputShape, again.InputShape);
        Assert.Equal(spec.LayerLines.Count, again.LayerLines.Count);
        Assert.Equal(spec.LossName, again.LossName);
    }

    [Fact]
    public void Canonical_text_spells_out_every_layer_and_the_loss()
    {
        var spec = ModelSpec.Parse("input 1 28 28;conv2d  32 3 stride=1\t pad=0 # defaults are dropped\n relu;maxpool2d 2 stride=2;flatten;leakyrelu slope=0.01;dense 10 init=he");

        Assert.Equal("input 1 28 28\nconv2d 32 3\nrelu\nmaxpool2d 2\nflatten\nleakyrelu\ndense 10\nloss cross-entropy\n", spec.ToText());
    }

    [Theory]
    [InlineData("input 1 8 8\nconv3d 4 3", "unknown layer 'conv3d'")]
    [InlineData("input 1 8 8\nbatchnorm", "unknown layer 'batchnorm'")]
    [InlineData("input 1 8 8\ndense 10", "flatten")]
    [InlineData("input 1 8 8\ndense 10", "'dense 10'")]
    [InlineData("flatten\ndense 10", "'input")]
    [InlineData("input 1 4 4\nconv2d 2 5", "'conv2d 2 5'")]
    [InlineData("input 1 4 4\nconv2d 2 5", "larger")]
    [InlineData("input 1 8 8\nconv2d 2 3 stride=-1", "stride=-1")]
    [InlineData("input 1 8 8\nmaxpool2d 2 stride=-2", "stride=-2")]
    [InlineData("input 1 8 8\nconv2d 2 3 dilation=2", "'dilation'")]
    [InlineData("input 1 8 8\nrelu inplace=true", "'inplace'")]
    [InlineData("input 1 8 8\nflatten\ndense ten", "'ten'")]
    [InlineData("input 1 8 8\nflatten\ndense 10 20", "'dense 10 20'")]
    [InlineData("input 1 8 8\nflatten\ndense 10 init=zeros", "'zeros'")]
    [InlineData("input 1 8 8\ndropout 1.5", "1.5")]
    [InlineData("input 1 0 8\nflatten", "'input 1 0 8'")]
    [InlineData("input 1 8 8", "no layers")]
    [InlineData("input 1 8 8\nflatten\nloss hinge", "'hinge'")]
    [InlineData("input 1 8 8\nlstm 16", "reshape 8 8")]
    [InlineData("input 64\ngru 16", "[64]")]
    [InlineData("input 8 8\nlstm 0", "0")]
    [InlineData("input 8 8\nrnn 4 return=first", "'first'")]
    [InlineData("input 1 8 8\nreshape 28 28", "[1, 8, 8]")]
    [InlineData("input 1 8 8\nreshape 8 -8", "[8, -8]")]
    public void Bad_specs_are_rejected_with_a_message_naming_the_bad_token(string text, string named)
    {
        var error = Assert.Throws<ModelSpecException>(() => ModelSpec.Parse(text));

        Assert.Contains(named, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public void An_unknown_preset_is_rejected_listing_the_presets()
    {
        var error = Assert.Throws<ModelSpecException>(() => ModelPresets.Resolve("nope"));

        Assert.Contains("'nope'", error.Message, StringComparison.Ordinal);
        foreach (string name in ModelPresets.Names)
        {
            Assert.Contains(name, error.Message, StringComparison.Ordinal);
        }
        Assert.Equal(["gru", "lenet", "lstm", "mlp", "resnet"], ModelPresets.Names.Order(StringComparer.Ordinal));
    }

    private static (double Mean, double Std) Statistics(float[] values)
    {
        double mean = values.Average(v => (double)v);
        double variance = values.Sum(v => (v - mean) * (v - mean)) / values.Length;
        return (mean, Math.Sqrt(variance));
    }
}
