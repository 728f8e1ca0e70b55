using Cluster.Tests;

namespace Cluster.Launcher.Tests;

/// <summary>Every user error ends as one line naming the bad value, exit code 2, and no output file.</summary>
public sealed class BadInputTests
{
    [Theory]
    [InlineData("--model", "resnet9000", "resnet9000")]
    [InlineData("--lr", "0", "--lr 0")]
    [InlineData("--lr", "-0.5", "--lr -0.5")]
    [InlineData("--batch", "0", "--batch 0")]
    [InlineData("--epochs", "0", "--epochs 0")]
    [InlineData("--threads", "0", "--threads 0")]
    [InlineData("--optimizer", "rmsprop9", "rmsprop9")]
    [InlineData("--weight-decay", "-1", "--weight-decay -1")]
    [InlineData("--data", "/no/such/fashion-mnist", "/no/such/fashion-mnist")]
    [InlineData("--schedule", "step:-1:0.5", "step:-1:0.5")]
    [InlineData("--schedule", "sawtooth", "sawtooth")]
    [InlineData("--clip-norm", "0", "--clip-norm 0")]
    [InlineData("--patience", "0", "--patience 0")]
    [InlineData("--validation", "1.5", "--validation 1.5")]
    [InlineData("--augment", "rotate", "rotate")]
    [InlineData("--augment", "shift:28", "shift:28")]
    public void TrainRejectsBadValueInOneLine(string flag, string value, string named)
    {
        using var scratch = new ScratchDirectory();
        string metrics = scratch.File("metrics.jsonl");
        string[] args = flag == "--epochs"
            ? ["train", flag, value, "--metrics", metrics]
            : ["train", flag, value, "--metrics", metrics, "--epochs", "1"];
        var (code, _, error) = CliRunner.Run(args);
        Assert.Equal(Cli.UsageError, code);
        string line = Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains(named, line);
        Assert.False(File.Exists(metrics), "no metrics file is written for a run that never started");
    }

    [Fact]
    public void NonNumericFlagIsAParseErrorWithExitTwo()
    {
        var (code, _, error) = CliRunner.Run("train", "--epochs", "many");
        Assert.Equal(Cli.UsageError, code);
        Assert.Contains("many", error);
    }

    [Fact]
    public void SaveIntoMissingDirectoryIsRejectedBeforeTraining()
    {
        var (code, output, error) = CliRunner.Run("train", "--model", "mlp", "--save", "/no/such/dir/model.safetensors");
        Assert.Equal(Cli.UsageError, code);
        Assert.Contains("/no/such/dir", error);
        Assert.DoesNotContain("epoch", output);
    }

    [Fact]
    public void CorruptedIdxFileIsNamed()
    {
        using var scratch = new ScratchDirectory();
        foreach (string name in new[] { "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte" })
        {
            File.WriteAllBytes(scratch.File(name), [0, 0, 8, 3, 0, 0, 0, 9]);
        }
        var (code, _, error) = CliRunner.Run("train", "--data", scratch.Path, "--epochs", "1");
        Assert.Equal(Cli.UsageError, code);
        Assert.Contains("idx", error, StringComparison.OrdinalIgnoreCase);
        Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Theory]
    [InlineData("train", "--patience", "x", "option '--patience': expected a whole number.")]
    [InlineData("local", "--workers", "abc", "option '--workers': expected a whole number.")]
    [InlineData("train", "--lr", "fast", "option '--lr': expected a number, such as 0.5.")]
    [InlineData("train", "--seed", "-1", "option '--seed': expected a whole number, 0 or more.")]
    public void AValueOfTheWrongKindIsNamedWithWhatToGive(string command, string flag, string value, string expected)
    {
        var (code, _, error) = CliRunner.Run(command, flag, value);
        Assert.Equal(Cli.UsageError, code);
        Assert.Contains(expected, error);
        Assert.DoesNotContain("System.", error);
    }

    [Theory]
    [InlineData("lstm")]
    [InlineData("gru")]
    [InlineData("lenet")]
    public void ImagesOfAnotherShapeThanTheModelTakesAreRejected(string model)
    {
        using var scratch = new ScratchDirectory();
        const int count = 4;
        byte[] labels = [0, 1, 2, 3];
        foreach (string split in new[] { "train", "t10k" })
        {
            File.WriteAllBytes(scratch.File($"{split}-images-idx3-ubyte"), IdxFiles.Build([count, 32, 32], IdxFiles.Pattern(count * 32 * 32)));
            File.WriteAllBytes(scratch.File($"{split}-labels-idx1-ubyte"), IdxFiles.Build([count], labels));
        }
        var (code, output, error) = CliRunner.Run("train", "--model", model, "--data", scratch.Path, "--epochs", "1");
        Assert.Equal(Cli.UsageError, code);
        string line = Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains($"'{model}'", line);
        Assert.Contains("[1, 28, 28]", line);
        Assert.Contains("[1, 32, 32]", line);
        Assert.DoesNotContain("epoch 1", output);
    }

    [Fact]
    public void CorruptedCheckpointIsNamed()
    {
        using var scratch = new ScratchDirectory();
        string path = scratch.File("broken.safetensors");
        File.WriteAllBytes(path, [200, 0, 0, 0, 0, 0, 0, 0, (byte)'{']);
        var (code, _, error) = CliRunner.Run("evaluate", "--checkpoint", path);
        Assert.Equal(Cli.UsageError, code);
        Assert.Contains("broken.safetensors", error);
    }

    [Fact]
    public void MissingCheckpointIsNamed()
    {
        var (code, _, error) = CliRunner.Run("evaluate", "--checkpoint", "/no/such/model.safetensors");
        Assert.Equal(Cli.UsageError, code);
        Assert.Contains("/no/such/model.safetensors", error);
    }

    [Theory]
    [InlineData("worker", "--server", "http://127.0.0.1:1")]
    [InlineData("server", "--port", "0")]
    public void AnUnreadableTokenFileIsNamedBeforeAnythingStarts(params string[] command)
    {
        var (code, output, error) = CliRunner.Run([.. command, "--token-file", "/no/such/token"]);
        Assert.Equal(Cli.UsageError, code);
        Assert.Contains("--token-file '/no/such/token': cannot read it", error);
        Assert.DoesNotContain("listening", output);
    }

    [Fact]
    public void TlsFilesThatCannotServeAreRefusedInOneLineBeforeTheServerListens()
    {
        using var scratch = new ScratchDirectory();
        var (certificate, key) = TestCertificates.WriteSelfSigned(scratch, "server");
        var (_, otherKey) = TestCertificates.WriteSelfSigned(scratch, "other");
        string[] server = ["server", "--host", "127.0.0.1", "--port", "0", "--model", "mlp", "--data", "embedded"];
        (string[] Flags, string Said)[] cases =
        [
            (["--tls-cert", certificate], "--tls-cert and --tls-key go together"),
            (["--tls-key", key], "--tls-cert and --tls-key go together"),
            (["--tls-cert", "/no/such/server.crt", "--tls-key", key], "--tls-cert '/no/such/server.crt': no such file"),
            (["--tls-cert", certificate, "--tls-key", otherKey], $"--tls-cert '{certificate}' with --tls-key '{otherKey}': not a PEM certificate and its matching private key"),
            (["--tls-cert", key, "--tls-key", key], $"--tls-cert '{key}' with --tls-key '{key}': not a PEM certificate and its matching private key"),
        ];
        foreach (var (flags, said) in cases)
        {
            var (code, output, error) = CliRunner.Run([.. server, .. flags]);
            Assert.True(code == Cli.UsageError, $"{string.Join(' ', flags)}: exit {code}\n{output}{error}");
            Assert.Contains(said, error);
            Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.DoesNotContain("listening", output);
        }
    }

    [Theory]
    [InlineData("worker")]
    [InlineData("status")]
    public void ATrustedCertificateThatIsNotOneIsRefusedBeforeAnyCall(string command)
    {
        using var scratch = new ScratchDirectory();
        var (_, key) = TestCertificates.WriteSelfSigned(scratch, "server");
        foreach (var (file, said) in new[] { ("/no/such/ca.crt", "--tls-ca '/no/such/ca.crt': no such file"), (key, $"--tls-ca '{key}': not a PEM certificate") })
        {
            var (code, _, error) = CliRunner.Run(command, "--server", "https://127.0.0.1:1", "--tls-ca", file);
            Assert.Equal(Cli.UsageError, code);
            Assert.Contains(said, error);
        }
    }

    [Fact]
    public void ANegativeRankIsRefusedBeforeTheWorkerStarts()
    {
        var (code, _, error) = CliRunner.Run("worker", "--server", "http://127.0.0.1:1", "--rank", "-1");
        Assert.Equal(Cli.UsageError, code);
        Assert.Contains("--rank -1 is not allowed: give 0 to N-1", error);
    }

    [Fact]
    public void UnknownCommandExitsTwo()
    {
        var (code, _, _) = CliRunner.Run("fly");
        Assert.Equal(Cli.UsageError, code);
    }
}
