using Cluster.Layers;
using Cluster.Models;
using Cluster.Tensors;

namespace Cluster.Tests.Layers;

/// <summary>Batch norm's statistics: batch statistics in training, running estimates in evaluation.</summary>
public sealed class BatchNormTests
{
    private static (BatchNorm2D Layer, Tensor X, Tensor Y) Create()
    {
        var layer = new BatchNorm2D();
        layer.Build([2, 3, 3]);
        var weights = new float[] { 2f, 0.5f, 0.1f, -0.3f };
        var grads = new float[4];
        layer.Bind([new Tensor(weights, 0, 2), new Tensor(weights, 2, 2)], [new Tensor(grads, 0, 2), new Tensor(grads, 2, 2)]);
        layer.Allocate(4);
        var random = new SeededRandom(5);
        var x = Tensor.Zeros(4, 2, 3, 3);
        foreach (ref float v in x.Span)
        {
            v = 3f + 2f * random.NextGaussian();
        }
        return (layer, x, Tensor.Zeros(4, 2, 3, 3));
    }

    [Fact]
    public void TrainingOutputHasTheShiftAndScaleAsMeanAndDeviation()
    {
        var (layer, x, y) = Create();
        layer.Forward(x, y, training: true);
        for (int c = 0; c < 2; c++)
        {
            var values = Enumerable.Range(0, 4).SelectMany(n => y.Sample(n).Slice(c * 9, 9).ToArray()).Select(v => (double)v).ToArray();
            double mean = values.Average();
            double std = Math.Sqrt(values.Select(v => (v - mean) * (v - mean)).Average());
            Assert.Equal(c == 0 ? 0.1 : -0.3, mean, 4);
            Assert.Equal(c == 0 ? 2.0 : 0.5, std, 3);
        }
    }

    [Fact]
    public void RunningStatisticsConvergeAndDriveEvaluation()
    {
        var (layer, x, y) = Create();
        for (int i = 0; i < 200; i++)
        {
            layer.Forward(x, y, training: true);
        }
        var values = Enumerable.Range(0, 4).SelectMany(n => x.Sample(n).Slice(0, 9).ToArray()).Select(v => (double)v).ToArray();
        double mean = values.Average();
        double unbiased = values.Select(v => (v - mean) * (v - mean)).Sum() / (values.Length - 1);
        Assert.Equal(mean, layer.RunningMean[0], 3);
        Assert.Equal(unbiased, layer.RunningVariance[0], 3);

        var training = y.Span.ToArray();
        layer.Forward(x, y, training: false);
        float expected = (float)(2.0 * (x.Span[0] - layer.RunningMean[0]) / Math.Sqrt(layer.RunningVariance[0] + 1e-5) + 0.1);
        Assert.Equal(expected, y.Span[0], 4);
        Assert.NotEqual(training[0], y.Span[0]);
    }

    [Fact]
    public void SpecLinesBuildBatchNormAndGlobalPooling()
    {
        var spec = ModelSpec.Parse("input 1 8 8\nconv2d 4 3 pad=1\nbatchnorm2d momentum=0.2\nrelu\nglobalavgpool2d\nbatchnorm1d\ndense 10");
        var model = new Sequential(spec);
        Assert.Equal([4], model.Layers[3].OutputShape);
        Assert.Equal(4 * 9 + 4 + 4 + 4 + 4 + 4 + 40 + 10, model.ParameterCount);
        Assert.Contains("batchnorm2d momentum=0.2", spec.ToText());
        var e = Assert.Throws<ModelSpecException>(() => ModelSpec.Parse("input 1 8 8\nbatchnorm1d"));
        Assert.Contains("batchnorm1d", e.Message);
    }

    [Fact]
    public void ResnetPresetHasThreeStagesAndCountsItsParameters()
    {
        var model = new Sequential(ModelPresets.Resolve("resnet"));
        Assert.Equal([64, 7, 7], model.Layers[8].OutputShape);
        Assert.Equal(175_530, model.ParameterCount);
        Assert.Contains(model.NamedParameters, p => p.Name == "5.downsample.0.weight");
        Assert.DoesNotContain(model.NamedParameters, p => p.Name == "4.downsample.0.weight");
    }

    [Fact]
    public void CheckpointsKeepTheRunningStatisticsSoEvaluationSurvivesAReload()
    {
        using var scratch = new ScratchDirectory();
        var model = new Sequential(ModelSpec.Parse("input 1 6 6\nconv2d 3 3\nbatchnorm2d\nrelu\nflatten\ndense 4"));
        model.Initialize(4);
        var random = new SeededRandom(8);
        var x = Tensor.Zeros(5, 1, 6, 6);
        foreach (ref float v in x.Span)
        {
            v = 2f + random.NextGaussian();
        }
        for (int i = 0; i < 20; i++)
        {
            model.Forward(x, training: true);
        }
        var before = model.Forward(x, training: false).Span.ToArray();
        Assert.Contains("1.running_mean", model.NamedState.Select(s => s.Name));

        string path = scratch.File("bn.safetensors");
        Cluster.Checkpoints.Checkpoint.Save(path, model);
        var loaded = Cluster.Checkpoints.Checkpoint.Load(path).Model;

        Assert.Equal(model.State, loaded.State);
        Assert.Equal(before, loaded.Forward(x, training: false).Span.ToArray());
    }
}
