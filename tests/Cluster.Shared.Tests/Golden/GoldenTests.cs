using Cluster.Layers;
using Cluster.Models;
using Cluster.Optim;
using Cluster.Tensors;

namespace Cluster.Tests.Golden;

/// <summary>
/// Cluster's engine against PyTorch: forward outputs, input and parameter gradients, batch-norm
/// statistics, losses, optimizer trajectories, gradient clipping and learning-rate schedules,
/// each compared with the values that tests/golden/generate.py computed and committed.
/// </summary>
public sealed class GoldenTests
{
    public static TheoryData<string> Conv2dCases => LayerNames("conv2d");

    public static TheoryData<string> PoolingCases => LayerNames("pooling");

    public static TheoryData<string> DenseCases => LayerNames("dense");

    public static TheoryData<string> ActivationCases => LayerNames("activations");

    public static TheoryData<string> BatchNormCases => LayerNames("batchnorm");

    public static TheoryData<string> ResidualCases => LayerNames("residual");

    public static TheoryData<string> NetworkCases => LayerNames("network");

    public static TheoryData<string> LossCases => GoldenFiles.Names<LossCase>("losses", c => c.Name);

    public static TheoryData<string> OptimizerCases => GoldenFiles.Names<OptimizerCase>("optimizers", c => c.Name);

    public static TheoryData<string> ClippingCases => GoldenFiles.Names<ClippingCase>("clipping", c => c.Name);

    public static TheoryData<string> ScheduleCases => GoldenFiles.Names<ScheduleCase>("schedules", c => c.Name);

    internal static TheoryData<string> LayerNames(string family) => GoldenFiles.Names<LayerCase>(family, c => c.Name);

    internal static LayerCase Layer(string family, string name) => GoldenFiles.Case<LayerCase>(family, name, c => c.Name);

    [Theory]
    [MemberData(nameof(Conv2dCases))]
    public void Conv2d_matches_PyTorch(string name) => GoldenNetwork.Check(Layer("conv2d", name));

    [Theory]
    [MemberData(nameof(PoolingCases))]
    public void Pooling_matches_PyTorch(string name) => GoldenNetwork.Check(Layer("pooling", name));

    [Theory]
    [MemberData(nameof(DenseCases))]
    public void Dense_matches_PyTorch(string name) => GoldenNetwork.Check(Layer("dense", name));

    [Theory]
    [MemberData(nameof(ActivationCases))]
    public void Activation_matches_PyTorch(string name) => GoldenNetwork.Check(Layer("activations", name));

    [Theory]
    [MemberData(nameof(BatchNormCases))]
    public void Batch_norm_matches_PyTorch(string name) => GoldenNetwork.Check(Layer("batchnorm", name));

    [Theory]
    [MemberData(nameof(ResidualCases))]
    public void Residual_block_matches_torchvision_basic_block(string name) => GoldenNetwork.Check(Layer("residual", name));

    [Theory]
    [MemberData(nameof(NetworkCases))]
    public void Network_matches_PyTorch(string name) => GoldenNetwork.Check(Layer("network", name));

    [Theory]
    [MemberData(nameof(LossCases))]
    public void Loss_matches_PyTorch(string name)
    {
        var c = GoldenFiles.Case<LossCase>("losses", name, x => x.Name);
        var logits = Tensor.FromValues(c.Logits.Values, c.Logits.Shape);
        var gradient = Tensor.Zeros(c.Logits.Shape);
        float loss;
        if (c.Targets is { } targets)
        {
            Assert.Equal("mse", c.Loss);
            loss = MeanSquaredError.Forward(logits, targets.Values);
            MeanSquaredError.Backward(logits, targets.Values, gradient);
        }
        else
        {
            var criterion = Loss.Create(c.Loss);
            int[] labels = c.Labels ?? throw new InvalidOperationException($"{name} has neither labels nor targets");
            loss = criterion.Forward(logits, labels);
            criterion.Backward(logits, labels, gradient);
        }
        GoldenAssert.Close(name, "loss", loss, c.Expected.Loss);
        GoldenAssert.Close(name, "dlogits", gradient.Shape, gradient.Span, c.Expected.Dlogits);
    }

    [Theory]
    [MemberData(nameof(OptimizerCases))]
    public void Optimizer_follows_PyTorch(string name)
    {
        var c = GoldenFiles.Case<OptimizerCase>("optimizers", name, x => x.Name);
        var layout = new List<NamedParameter>();
        int offset = 0;
        foreach (var p in c.Layout)
        {
            layout.Add(new NamedParameter(p.Name, offset, p.Shape, p.Decays));
            offset += Tensor.Product(p.Shape);
        }
        var s = c.Optimizer;
        var defaults = new OptimizerOptions();
        var options = new OptimizerOptions
        {
            Name = s.Name,
            LearningRate = s.Lr,
            Momentum = s.Momentum ?? defaults.Momentum,
            Beta1 = s.Beta1 ?? defaults.Beta1,
            Beta2 = s.Beta2 ?? defaults.Beta2,
            Alpha = s.Alpha ?? defaults.Alpha,
            Epsilon = s.Eps ?? defaults.Epsilon,
            WeightDecay = s.WeightDecay ?? 0f,
        };
        // NOTE: RMSprop's momentum is not an option of Optimizer.Create, so that case builds it directly.
        var optimizer = s.Name == "rmsprop" && s.Momentum is float momentum
            ? new RmsProp(options, layout, momentum)
            : Optimizer.Create(options, layout);

        float[] parameters = (float[])c.Start.Clone();
        Assert.Equal(optimizer.Size, parameters.Length);
        for (int step = 0; step < c.Gradients.Length; step++)
        {
            optimizer.Step(parameters, c.Gradients[step]);
            GoldenAssert.Close(name, $"step {step + 1} parameter", parameters, c.Expected[step]);
        }
    }

    [Theory]
    [MemberData(nameof(ClippingCases))]
    public void Clipping_by_global_norm_matches_PyTorch(string name)
    {
        var c = GoldenFiles.Case<ClippingCase>("clipping", name, x => x.Name);
        float[] gradients = (float[])c.Gradients.Clone();
        float norm = GradientClipping.ClipByGlobalNorm(gradients, c.MaxNorm);
        GoldenAssert.Close(name, "norm", norm, c.Expected.Norm);
        GoldenAssert.Close(name, "clipped gradient", gradients, c.Expected.Gradients);
    }

    [Theory]
    [MemberData(nameof(ScheduleCases))]
    public void Schedule_matches_PyTorch(string name)
    {
        var c = GoldenFiles.Case<ScheduleCase>("schedules", name, x => x.Name);
        var schedule = LearningRateSchedule.Parse(c.Schedule, c.Epochs);
        Assert.Equal(c.Epochs, c.Rates.Length);
        for (int epoch = 0; epoch < c.Epochs; epoch++)
        {
            // Compared as fractions of the base rate, so the tolerance does not depend on its size.
            GoldenAssert.Close(name, $"rate at epoch {epoch}", schedule.RateAt(epoch, c.BaseRate) / c.BaseRate, c.Rates[epoch] / c.BaseRate);
        }
    }
}
