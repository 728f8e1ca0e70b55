using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Cluster.Checkpoints;
using Cluster.Data;
using Cluster.Tests;
using Cluster.Training;

namespace Cluster.Launcher.Tests;

/// <summary>
/// <c>deploy/local.sh</c>, the local cluster for people who do not want the launcher: a server and
/// worker processes started by the script train, save and all exit; bad arguments are refused
/// before anything starts.
/// </summary>
[Collection(nameof(ProcessTests))]
public sealed class DeployScriptTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(4);

    [Fact]
    public async Task TheScriptRunsAClusterThatTrainsAndLeavesNoProcessBehind()
    {
        using var scratch = new ScratchDirectory();
        string port = LocalClusterTests.FreePort().ToString(CultureInfo.InvariantCulture);
        string checkpoint = scratch.File("model.safetensors");
        var (code, output) = await RunScriptAsync(new() { ["PORT"] = port, ["LOG_DIR"] = scratch.File("logs") },
            "2", "sync", "--model", "mlp", "--data", "embedded", "--epochs", "1", "--save", checkpoint);

        Assert.True(code == 0, output);
        Assert.Contains("the server and 2 worker(s) exited cleanly", output);
        Assert.Contains("epoch 1: train loss", output);
        Assert.Empty(ProcessesNaming($"127.0.0.1:{port}").Concat(ProcessesNaming($"--port\0{port}")));
        string serverLog = File.ReadAllText(Path.Combine(scratch.File("logs"), "server.log"));
        Assert.Contains("worker 0 joined: worker-0 (", serverLog);
        Assert.Contains("worker 1 joined: worker-1 (", serverLog);

        // The run trained: its checkpoint holds one epoch and evaluates well above chance.
        var loaded = Checkpoint.Load(checkpoint);
        Assert.Equal("1", loaded.Metadata["cluster.epochs"]);
        var data = FashionMnist.Load("embedded", NormalizationMetadata.Read(loaded.Metadata, checkpoint));
        double accuracy = Trainer.Evaluate(loaded.Model, data.Test).Accuracy;
        Assert.True(accuracy >= 0.75, $"test accuracy {accuracy:P2} after one epoch of mlp");
    }

    [Fact]
    public async Task WithBackupWorkersTheScriptStartsThemTooAndTheRunEnds()
    {
        using var scratch = new ScratchDirectory();
        string port = LocalClusterTests.FreePort().ToString(CultureInfo.InvariantCulture);
        var (code, output) = await RunScriptAsync(new() { ["PORT"] = port, ["LOG_DIR"] = scratch.File("logs") },
            "2", "sync", "--backup-workers", "1", "--model", "mlp", "--data", "embedded", "--epochs", "1");

        Assert.True(code == 0, output);
        Assert.Contains("the server and 3 worker(s) exited cleanly", output);
        Assert.Contains("worker 2 joined: worker-2 (", File.ReadAllText(Path.Combine(scratch.File("logs"), "server.log")));
    }

    [Theory]
    [InlineData("0", "WORKERS '0'")]
    [InlineData("many", "WORKERS 'many'")]
    public async Task BadWorkerCountsAreRefusedInOneLineBeforeAnythingStarts(string workers, string named)
    {
        using var scratch = new ScratchDirectory();
        var (code, output) = await RunScriptAsync(new() { ["LOG_DIR"] = scratch.File("logs") }, workers, "sync");
        Assert.Equal(2, code);
        Assert.Contains(named, output);
        Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.False(Directory.Exists(scratch.File("logs")), "nothing is started, not even the log directory");
    }

    [Fact]
    public async Task APortInUseIsRefusedInOneLine()
    {
        using var holder = new TcpListener(IPAddress.Loopback, 0);
        holder.Start();
        string port = ((IPEndPoint)holder.LocalEndpoint).Port.ToString(CultureInfo.InvariantCulture);
        var (code, output) = await RunScriptAsync(new() { ["PORT"] = port }, "2", "sync");
        Assert.Equal(2, code);
        Assert.Contains($"port {port}", output);
        Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    /// <summary>Runs the script with <paramref name="environment"/> added; its exit code and its output and errors together.</summary>
    private static async Task<(int Code, string Output)> RunScriptAsync(Dictionary<string, string> environment, params string[] args)
    {
        var start = new ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        start.ArgumentList.Add(Path.Combine(RepositoryRoot(), "deploy", "local.sh"));
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }
        using var script = Process.Start(start) ?? throw new InvalidOperationException("bash did not start");
        script.StandardInput.Close();
        var output = script.StandardOutput.ReadToEndAsync();
        var error = script.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(Limit);
        try
        {
            await script.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            // NOTE: TERM first, so that the script's trap stops the cluster it started.
            Process.Start("kill", ["-TERM", script.Id.ToString(CultureInfo.InvariantCulture)])?.WaitForExit();
            await script.WaitForExitAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(15)).ConfigureAwait(false);
            throw new TimeoutException($"deploy/local.sh did not finish in {Limit.TotalMinutes} minutes:\n{await output}{await error}");
        }
        return (script.ExitCode, (await output) + (await error));
    }

    /// <summary>The repository's root (the directory holding deploy/local.sh), found upward from the tests' binaries.</summary>
    internal static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "deploy", "local.sh")))
            {
                return directory.FullName;
            }
        }
        throw new InvalidOperationException($"no deploy/local.sh above {AppContext.BaseDirectory}");
    }

    /// <summary>Processes whose command line (arguments NUL-separated) contains <paramref name="text"/>.</summary>
    private static int[] ProcessesNaming(string text) =>
        [.. Directory.GetDirectories("/proc")
            .Select(path => int.TryParse(Path.GetFileName(path), out int pid) ? pid : 0)
            .Where(pid => pid > 0 && pid != Environment.ProcessId && LocalClusterTests.CommandLine(pid).Contains(text, StringComparison.Ordinal))];
}
