using System.Text.Json;
using Cluster.Tests;

namespace Cluster.Launcher.Tests;

/// <summary>The commands doing their real work on the embedded data.</summary>
public sealed class CommandTests
{
    [Fact]
    public void SummaryOfLenetCountsItsParameters()
    {
        var (code, output, _) = CliRunner.Run("summary", "--model", "lenet");
        Assert.Equal(0, code);
        Assert.Contains("225,034", output);
        Assert.Contains("[64, 11, 11]", output);
        Assert.Contains("[1600]", output);
    }

    [Fact]
    public void TrainWritesMetricsAndCheckpointThatEvaluateReproduces()
    {
        using var scratch = new ScratchDirectory();
        string metrics = scratch.File("metrics.jsonl");
        string model = scratch.File("mlp.safetensors");
        var (code, output, error) = CliRunner.Run("train", "--model", "mlp", "--epochs", "2", "--data", "embedded", "--metrics", metrics, "--save", model, "--threads", "2");
        Assert.True(code == 0, error);
        Assert.Contains("epoch 2", output);

        string[] lines = File.ReadAllLines(metrics);
        Assert.Equal(2, lines.Length);
        using var last = JsonDocument.Parse(lines[1]);
        var root = last.RootElement;
        Assert.Equal(2, root.GetProperty("epoch").GetInt32());
        foreach (string field in new[] { "train_loss", "test_loss", "test_accuracy", "images_per_sec", "seconds" })
        {
            Assert.True(root.GetProperty(field).GetDouble() > 0, field);
        }
        double accuracy = root.GetProperty("test_accuracy").GetDouble();
        Assert.InRange(accuracy, 0.75, 1.0);

        var saved = Checkpoints.Checkpoint.Load(model).Metadata;
        var embedded = Data.FashionMnist.LoadEmbedded();
        Assert.Equal(embedded.Normalization, Checkpoints.NormalizationMetadata.Read(saved, model));

        var (evalCode, evalOutput, evalError) = CliRunner.Run("evaluate", "--checkpoint", model, "--data", "embedded");
        Assert.True(evalCode == 0, evalError);
        Assert.Contains($"test accuracy {accuracy:P2}", evalOutput);
        Assert.Contains("Ankle boot", evalOutput);
    }

    [Fact]
    public void EarlyStoppingSavesTheBestModelNotTheLast()
    {
        using var scratch = new ScratchDirectory();
        string metrics = scratch.File("metrics.jsonl");
        string model = scratch.File("best.safetensors");
        var (code, output, error) = CliRunner.Run("train", "--model", "mlp", "--epochs", "40", "--lr", "0.003", "--data", "embedded", "--patience", "2", "--metrics", metrics, "--save", model);
        Assert.True(code == 0, error);

        var epochs = File.ReadAllLines(metrics).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.All(epochs, e => Assert.True(e.TryGetProperty("validation_accuracy", out _)));
        var bestByValidation = epochs.MaxBy(e => e.GetProperty("validation_accuracy").GetDouble());
        int best = bestByValidation.GetProperty("epoch").GetInt32();
        Assert.Contains($"keeping the weights of epoch {best}", output);
        // NOTE: where it stalls depends on the float rounding of the CPU's kernels (AVX2 or AVX-512): 12 epochs on one, 7 on another.
        Assert.True(epochs.Count < 40, "validation accuracy of mlp on the subset stalls well before 40 epochs");
        Assert.Equal(best + 2, epochs.Count);

        var (_, evaluation, _) = CliRunner.Run("evaluate", "--checkpoint", model, "--data", "embedded");
        Assert.Contains($"test accuracy {bestByValidation.GetProperty("test_accuracy").GetDouble():P2}", evaluation);
    }
}
