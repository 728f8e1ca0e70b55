using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json;
using Cluster.Launcher.Commands;
using Cluster.Tests;

namespace Cluster.Launcher.Tests;

/// <summary><c>cluster plot</c>: runs' --metrics files become one PNG of learning curves and a table of each run's best epoch; bad files and flags get one line and no picture.</summary>
public sealed class PlotCommandTests
{
    [Fact]
    public void TwoTrainingRunsBecomeOnePictureAndATableOfTheirBestEpochs()
    {
        using var scratch = new ScratchDirectory();
        string adam = scratch.File("adam.jsonl");
        string sgd = scratch.File("sgd.jsonl");
        Assert.Equal(0, CliRunner.Run("train", "--model", "mlp", "--epochs", "3", "--data", "embedded", "--metrics", adam).ExitCode);
        Assert.Equal(0, CliRunner.Run("train", "--model", "mlp", "--epochs", "2", "--data", "embedded", "--optimizer", "sgd", "--metrics", sgd).ExitCode);

        var (code, output, error) = CliRunner.Run("plot", adam, sgd, "--x", "time");
        Assert.True(code == 0, error);
        string png = scratch.File("adam.png");
        Assert.Contains($"wrote {png}", output);
        byte[] bytes = File.ReadAllBytes(png);
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], bytes[..4]);
        Assert.Equal((1400, 600), (BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16)), BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20))));

        // Each run's row: its epochs and its best test accuracy, as its own file records them.
        foreach (var (path, epochs) in new[] { (adam, 3), (sgd, 2) })
        {
            var accuracies = File.ReadLines(path).Select(line => JsonDocument.Parse(line).RootElement.GetProperty("test_accuracy").GetDouble()).ToList();
            Assert.Equal(epochs, accuracies.Count);
            string row = output.Split('\n').Single(line => line.Contains($"│ {Path.GetFileNameWithoutExtension(path)} ", StringComparison.Ordinal));
            Assert.Contains(accuracies.Max().ToString("P2", CultureInfo.InvariantCulture), row);
            Assert.Contains($" {epochs} ", row);
        }
    }

    [Fact]
    public void ARunsCurvesAddUpItsEpochsSecondsAndARepeatedEpochCountsOnceWithItsLastRecord()
    {
        using var scratch = new ScratchDirectory();
        string path = scratch.File("resumed.jsonl");
        File.WriteAllLines(path,
        [
            Line(1, 2.0, 0.50, "\"mode\":\"sync\",\"workers\":3"),
            Line(2, 1.5, 0.60, "\"mode\":\"sync\",\"workers\":3"),
            Line(2, 1.25, 0.70, "\"mode\":\"sync\",\"workers\":3,\"validation_accuracy\":0.65"),
            "",
            Line(3, 1.0, 0.65, "\"mode\":\"sync\",\"workers\":3"),
        ]);
        var run = LearningCurves.Read(path);
        Assert.Equal("resumed (sync, 3 worker(s))", run.Name);
        Assert.Equal([1, 2, 3], run.Epochs.Select(e => e.Epoch));
        Assert.Equal([2.0, 3.25, 4.25], run.Epochs.Select(e => e.ElapsedSeconds));
        Assert.Equal([null, 0.65, null], run.Epochs.Select(e => e.ValidationAccuracy));
        Assert.Equal((2, 0.70), (run.Best.Epoch, run.Best.TestAccuracy));
    }

    [Theory]
    [InlineData("{\"epoch\":1,\"train_loss\":0.5,\"test_loss\":0.4,\"seconds\":1}", "line 2: no test_accuracy")]
    [InlineData("{\"epoch\":0,\"train_loss\":0.5,\"test_loss\":0.4,\"test_accuracy\":0.8,\"seconds\":1}", "line 2: no epoch")]
    [InlineData("epoch 2: train loss 0.5", "line 2: not JSON")]
    [InlineData("{\"epoch\":2,\"train_loss\":\"NaN\",\"test_loss\":0.4,\"test_accuracy\":0.8,\"seconds\":1}", "line 2: no train_loss")]
    public void ABadLineIsNamedInOneLineAndNoPictureIsWritten(string badLine, string named)
    {
        using var scratch = new ScratchDirectory();
        string path = scratch.File("run.jsonl");
        File.WriteAllLines(path, [Line(1, 1.0, 0.8, "\"mode\":\"async\",\"workers\":2"), badLine]);
        AssertRefused(["plot", path], $"metrics file '{path}' {named}");
        Assert.Empty(Directory.GetFiles(scratch.Path, "*.png*"));
    }

    [Fact]
    public void BadFilesAndFlagsAreRefusedInOneLine()
    {
        using var scratch = new ScratchDirectory();
        string good = scratch.File("good.jsonl");
        File.WriteAllLines(good, [Line(1, 1.0, 0.8, "\"mode\":\"sync\",\"workers\":2")]);
        string empty = scratch.File("empty.jsonl");
        File.WriteAllText(empty, "\n");

        AssertRefused(["plot", scratch.File("missing.jsonl")], $"metrics file '{scratch.File("missing.jsonl")}' does not exist");
        AssertRefused(["plot", empty], $"metrics file '{empty}' holds no epochs");
        AssertRefused(["plot", good, "--x", "steps"], "--x 'steps' is not known: use epoch or time");
        AssertRefused(["plot", good, "--out", scratch.File("curves.svg")], "is not a .png file");
        AssertRefused(["plot", good, "--out", scratch.File("nowhere/curves.png")], "does not exist");
        AssertRefused(["plot"], "Required argument missing for command: 'plot'");
        Assert.Empty(Directory.GetFiles(scratch.Path, "*.png*"));
    }

    private static void AssertRefused(string[] args, string named)
    {
        var (code, _, error) = CliRunner.Run(args);
        Assert.Equal(Cli.UsageError, code);
        Assert.Contains(named, error);
        Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    private static string Line(int epoch, double seconds, double accuracy, string extra) => string.Create(CultureInfo.InvariantCulture,
        $"{{\"epoch\":{epoch},\"train_loss\":0.5,\"test_loss\":0.4,\"test_accuracy\":{accuracy},\"images_per_sec\":1000,\"seconds\":{seconds},{extra}}}");
}
