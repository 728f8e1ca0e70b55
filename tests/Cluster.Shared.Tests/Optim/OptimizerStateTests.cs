using Cluster.Checkpoints;
using Cluster.Optim;
using Cluster.Tensors;
using Cluster.Tests.Checkpoints;

namespace Cluster.Tests.Optim;

/// <summary>
/// An optimizer's state written to a checkpoint and read back continues exactly: the steps after
/// a resume are the steps the optimizer would have taken had it never stopped.
/// </summary>
public sealed class OptimizerStateTests : IDisposable
{
    private readonly ScratchDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Theory]
    [InlineData("sgd")]
    [InlineData("momentum")]
    [InlineData("nesterov")]
    [InlineData("adam")]
    [InlineData("adamw")]
    [InlineData("rmsprop")]
    [InlineData("adagrad")]
    public void AnOptimizerResumedFromACheckpointTakesTheStepsOfOneNeverStopped(string name)
    {
        var options = new OptimizerOptions { Name = name, LearningRate = 0.01f, WeightDecay = 0.01f };
        var straight = CheckpointModels.Create("mlp", seed: 3);
        var straightOptimizer = Optimizer.Create(options, straight.NamedParameters);
        for (int step = 0; step < 5; step++)
        {
            straightOptimizer.Step(straight.Parameters, Gradient(straight.ParameterCount, step));
        }

        var first = CheckpointModels.Create("mlp", seed: 3);
        var firstOptimizer = Optimizer.Create(options, first.NamedParameters);
        for (int step = 0; step < 2; step++)
        {
            firstOptimizer.Step(first.Parameters, Gradient(first.ParameterCount, step));
        }
        string path = _directory.File($"{name}.safetensors");
        Checkpoint.Save(path, first, optimizer: firstOptimizer.CaptureState());

        var resumed = Checkpoint.Load(path).Model;
        var state = Checkpoint.LoadOptimizerState(path, resumed);
        Assert.NotNull(state);
        Assert.Equal(2, state.Steps);
        var resumedOptimizer = Optimizer.Create(options, resumed.NamedParameters);
        resumedOptimizer.RestoreState(state);
        for (int step = 2; step < 5; step++)
        {
            resumedOptimizer.Step(resumed.Parameters, Gradient(resumed.ParameterCount, step));
        }

        Assert.Equal(CheckpointModels.Bits(straight.Parameters), CheckpointModels.Bits(resumed.Parameters));
        Assert.Equal(5, resumedOptimizer.StepCount);
    }

    [Fact]
    public void TheStateIsStoredAsOneTensorPerParameterAndBufferUnderPyTorchsNames()
    {
        var model = CheckpointModels.Create("mlp", seed: 1);
        var adam = Optimizer.Create(new OptimizerOptions { Name = "adam" }, model.NamedParameters);
        adam.Step(model.Parameters, Gradient(model.ParameterCount, 0));
        string path = _directory.File("adam.safetensors");
        Checkpoint.Save(path, model, optimizer: adam.CaptureState());

        var header = SafetensorsFile.Read(path).Header;
        var metadata = header["__metadata__"]!.AsObject();
        Assert.Equal("adam", (string?)metadata["cluster.optimizer"]);
        Assert.Equal("1", (string?)metadata["cluster.optimizer.steps"]);
        foreach (var p in model.NamedParameters)
        {
            foreach (string buffer in new[] { "exp_avg", "exp_avg_sq" })
            {
                var entry = header[$"optimizer.{p.Name}.{buffer}"]!.AsObject();
                Assert.Equal(p.Shape, entry["shape"]!.AsArray().Select(d => (int)d!).ToArray());
            }
        }
        Assert.Equal(model.SavedTensors.Count + 2 * model.NamedParameters.Count, header.Count - 1);
    }

    [Fact]
    public void AModelSavedAloneHasNoOptimizerStateAndAStateDoesNotStopItLoadingAsAModel()
    {
        var model = CheckpointModels.Create("lenet", seed: 2);
        string alone = _directory.File("alone.safetensors");
        Checkpoint.Save(alone, model);
        Assert.Null(Checkpoint.LoadOptimizerState(alone, CheckpointModels.Create("lenet", seed: 9)));

        var momentum = Optimizer.Create(new OptimizerOptions { Name = "momentum" }, model.NamedParameters);
        momentum.Step(model.Parameters, Gradient(model.ParameterCount, 1));
        string withState = _directory.File("with-state.safetensors");
        Checkpoint.Save(withState, model, optimizer: momentum.CaptureState());

        Assert.Equal(model.Parameters, Checkpoint.Load(withState).Model.Parameters);
        var into = CheckpointModels.Create("lenet", seed: 9);
        Checkpoint.LoadInto(withState, into);
        Assert.Equal(model.Parameters, into.Parameters);
    }

    [Fact]
    public void AnIncompleteStateIsRefusedNamingTheMissingTensor()
    {
        var model = CheckpointModels.Create("mlp", seed: 4);
        var momentum = Optimizer.Create(new OptimizerOptions { Name = "momentum" }, model.NamedParameters);
        momentum.Step(model.Parameters, Gradient(model.ParameterCount, 0));
        string path = _directory.File("full.safetensors");
        Checkpoint.Save(path, model, optimizer: momentum.CaptureState());

        // Drop the last tensor, whose bytes end the file, so that the rest of the layout stays valid.
        var file = SafetensorsFile.Read(path);
        var last = model.NamedParameters[^1];
        string missing = $"optimizer.{last.Name}.momentum_buffer";
        string cut = _directory.File("cut.safetensors");
        var header = file.Header;
        header.Remove(missing);
        SafetensorsFile.Write(cut, header.ToJsonString(), file.Data[..^(sizeof(float) * last.Length)]);

        var e = Assert.Throws<CheckpointException>(() => Checkpoint.LoadOptimizerState(cut, model));
        Assert.Contains($"'{missing}' is missing", e.Message);
        // As a model it still loads: the weights are whole.
        Checkpoint.LoadInto(cut, CheckpointModels.Create("mlp", seed: 5));
    }

    [Fact]
    public void AStateIsRefusedByAnotherOptimizer()
    {
        var model = CheckpointModels.Create("mlp", seed: 1);
        var adam = Optimizer.Create(new OptimizerOptions { Name = "adam" }, model.NamedParameters);
        var state = adam.CaptureState();
        var momentum = Optimizer.Create(new OptimizerOptions { Name = "momentum" }, model.NamedParameters);

        var e = Assert.Throws<ArgumentException>(() => momentum.RestoreState(state));
        Assert.Contains("adam", e.Message);
        Assert.Contains("momentum", e.Message);
    }

    private static float[] Gradient(int size, int step)
    {
        var random = new SeededRandom(100 + (ulong)step);
        var gradient = new float[size];
        for (int i = 0; i < size; i++)
        {
            gradient[i] = random.NextGaussian() * 0.1f;
        }
        return gradient;
    }
}
