using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using Cluster.Checkpoints;
using Cluster.Data;
using Cluster.Launcher.Commands;
using Cluster.Tests;
using Cluster.Training;

namespace Cluster.Launcher.Tests;

/// <summary>Clusters that lose a process, a signal or a server mid-run, and go on: restarts, rejoins, resumes from checkpoints.</summary>
public sealed partial class LocalClusterTests
{
    [Fact]
    public async Task AWorkerWhoseServerDiesWaitsForItToComeBackThenSaysSoInOneLineAndExits()
    {
        using var scratch = new ScratchDirectory();
        Directory.CreateDirectory(scratch.File("logs"));
        using var children = new ChildProcesses(scratch.File("logs"));
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        string p = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var server = children.Start("server", ["server", "--host", "127.0.0.1", "--port", p, "--workers", "1", "--model", "mlp", "--epochs", "100", "--data", "embedded"]);
        var worker = children.Start("worker", ["worker", "--server", $"http://127.0.0.1:{p}", "--connect-timeout", "3"]);
        using var client = new Cluster.Worker.ParameterClient($"http://127.0.0.1:{p}");
        var clock = Stopwatch.StartNew();
        // Kill the server in the middle of the run, while the worker streams.
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            try
            {
                if ((await client.Client.StatusAsync(new Cluster.Wire.StatusRequest())).Version >= 50)
                {
                    break;
                }
            }
            catch (Grpc.Core.RpcException)
            {
                // Not listening yet.
            }
            await Task.Delay(100);
        }
        server.Kill();

        Assert.True(worker.WaitForExit(TimeSpan.FromSeconds(30)), "the worker is still running 30 s after its server died");
        // Without a timeout, WaitForExit also waits for the redirected output to be read to its end.
        worker.WaitForExit();
        Assert.Equal(1, worker.ExitCode);
        // It waits --connect-timeout for a server started again, then gives up in one line.
        string log = children.Tail("worker", 20);
        Assert.Contains("waiting for it to come back: joining again", log);
        Assert.Contains("cannot be reached after", log);
        Assert.DoesNotContain("BackgroundService failed", log);
    }

    [Theory]
    [InlineData("INT", 2)]
    [InlineData("TERM", 15)]
    public async Task LocalStoppedByASignalStopsEveryProcessItStartedAndExits130(string signal, int number)
    {
        using var scratch = new ScratchDirectory();
        Directory.CreateDirectory(scratch.File("logs"));
        using var children = new ChildProcesses(scratch.File("logs"), new Dictionary<string, string>());
        var launcher = children.Start("local", ["local", "--workers", "2", "--model", "mlp", "--epochs", "100", "--data", "embedded", "--log-dir", scratch.File("cluster")]);
        var clock = Stopwatch.StartNew();
        int[] started = [];
        while (started.Length < 3 && clock.Elapsed < TimeSpan.FromSeconds(60) && !launcher.HasExited)
        {
            await Task.Delay(200);
            started = ChildrenOf(launcher.Id);
        }
        Assert.Equal(3, started.Length);

        Assert.Equal(0, Kill(launcher.Id, number));
        Assert.True(launcher.WaitForExit(TimeSpan.FromSeconds(30)), $"cluster local still runs 30 s after SIG{signal}");
        launcher.WaitForExit();
        Assert.True(launcher.ExitCode == 130, $"exit code {launcher.ExitCode}; the launcher's output ends:\n{children.Tail("local", 40)}");
        Assert.Contains("stopping: every process of the cluster is being stopped", children.Tail("local", 20));
        // The launcher kills its children as it exits; give the kernel a moment to reap them.
        var reaped = Stopwatch.StartNew();
        while (started.Any(IsRunning) && reaped.Elapsed < TimeSpan.FromSeconds(5))
        {
            await Task.Delay(100);
        }
        foreach (int pid in started)
        {
            Assert.False(IsRunning(pid), $"process {pid} of the cluster still runs after SIG{signal} to its launcher");
        }
    }

    [Fact]
    public async Task LocalRestartsAWorkerThatDiesAndTheReplacementCarriesTheRunToItsEnd()
    {
        using var scratch = new ScratchDirectory();
        Directory.CreateDirectory(scratch.File("logs"));
        using var children = new ChildProcesses(scratch.File("logs"), new Dictionary<string, string>());
        var launcher = children.Start("local", ["local", "--workers", "2", "--model", "mlp", "--epochs", "12", "--data", "embedded", "--max-restarts", "1", "--log-dir", scratch.File("cluster")]);
        var clock = Stopwatch.StartNew();
        int victim = 0;
        while (victim == 0 && clock.Elapsed < TimeSpan.FromSeconds(60) && !launcher.HasExited)
        {
            await Task.Delay(200);
            victim = ChildrenOf(launcher.Id).FirstOrDefault(pid => CommandLine(pid).Contains("\0--name\0worker-1", StringComparison.Ordinal));
        }
        Assert.NotEqual(0, victim);
        // Once it is training: the server's log shows its first epoch.
        while (!children.Tail("local", 40).Contains("epoch 1:", StringComparison.Ordinal) && clock.Elapsed < TimeSpan.FromSeconds(90) && !launcher.HasExited)
        {
            await Task.Delay(100);
        }
        Assert.Equal(0, Kill(victim, 9));

        Assert.True(launcher.WaitForExit(TimeSpan.FromMinutes(3)), "cluster local still runs 3 minutes after a worker was killed");
        launcher.WaitForExit();
        string log = children.Tail("local", 60);
        Assert.True(launcher.ExitCode == 0, log);
        Assert.Contains("worker-1 died (exit code 137); worker-1.1 starts in its place (restart 1 of 1)", log);
        Assert.Contains("epoch 12:", log);
        string server = File.ReadAllText(scratch.File(Path.Combine("cluster", "server.log")));
        // Ranks go in join order, which races: worker-1 may have been rank 0.
        Assert.Matches("worker 2 joined: worker-1.1, in the place of worker [01], which left", server);
        Assert.Contains("worker 2 left", server);
    }

    [Fact]
    public async Task AWorkerTheServerLetGoWhilePausedJoinsAgainAndFinishesTheRun()
    {
        using var scratch = new ScratchDirectory();
        Directory.CreateDirectory(scratch.File("logs"));
        using var children = new ChildProcesses(scratch.File("logs"), new Dictionary<string, string>());
        var (server, address) = await StartServerAsync(children, "server", ["--workers", "2", "--model", "mlp", "--epochs", "10", "--data", "embedded", "--worker-timeout", "2"]);
        var steady = children.Start("steady", ["worker", "--server", address, "--name", "steady"]);
        var paused = children.Start("paused", ["worker", "--server", address, "--name", "paused"]);
        var clock = Stopwatch.StartNew();
        while (!children.Tail("server", 40).Contains("epoch 1:", StringComparison.Ordinal) && clock.Elapsed < TimeSpan.FromSeconds(90) && !server.HasExited)
        {
            await Task.Delay(100);
        }

        // SIGSTOP for twice the timeout: the server drops it and the run goes on; SIGCONT: it joins again.
        Assert.Equal(0, Kill(paused.Id, 19));
        await Task.Delay(TimeSpan.FromSeconds(4));
        Assert.Equal(0, Kill(paused.Id, 18));

        foreach (var process in new[] { server, steady, paused })
        {
            Assert.True(process.WaitForExit(TimeSpan.FromMinutes(2)), "the run did not end 2 minutes after the pause");
            process.WaitForExit();
        }
        string log = children.Tail("server", 200);
        Assert.True(server.ExitCode == 0 && steady.ExitCode == 0 && paused.ExitCode == 0, log);
        Assert.Matches("worker [01] \\(paused\\) silent for", log);
        Assert.Matches("worker 2 joined: paused, in the place of worker [01], which left", log);
        Assert.Contains("joining again", children.Tail("paused", 20));
    }

    [Fact]
    public async Task AWorkerLetGoWhosePlaceAnotherTookLearnsSoWhenItComesBackAndExits()
    {
        using var scratch = new ScratchDirectory();
        Directory.CreateDirectory(scratch.File("logs"));
        using var children = new ChildProcesses(scratch.File("logs"), new Dictionary<string, string>());
        var (server, address) = await StartServerAsync(children, "server", ["--workers", "2", "--model", "mlp", "--epochs", "30", "--data", "embedded", "--worker-timeout", "2"]);
        var steady = children.Start("steady", ["worker", "--server", address, "--name", "steady", "--rank", "0"]);
        var paused = children.Start("paused", ["worker", "--server", address, "--name", "paused", "--rank", "1"]);
        var clock = Stopwatch.StartNew();
        while (!children.Tail("server", 40).Contains("epoch 1:", StringComparison.Ordinal) && clock.Elapsed < TimeSpan.FromSeconds(90) && !server.HasExited)
        {
            await Task.Delay(100);
        }

        // Paused until the server has let it go, and a newcomer has taken its place; then it wakes.
        Assert.Equal(0, Kill(paused.Id, 19));
        clock.Restart();
        while (!children.Tail("server", 40).Contains("(paused) silent for", StringComparison.Ordinal) && clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(100);
        }
        var newcomer = children.Start("newcomer", ["worker", "--server", address, "--name", "newcomer"]);
        clock.Restart();
        while (!children.Tail("server", 40).Contains("worker 2 joined: newcomer, in the place of worker 1", StringComparison.Ordinal) && clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(100);
        }
        Assert.Equal(0, Kill(paused.Id, 18));

        // It is told at once (not after --connect-timeout) and exits 0: the run goes on without it.
        Assert.True(paused.WaitForExit(TimeSpan.FromSeconds(30)), "the worker whose place was taken still runs 30 s after waking");
        paused.WaitForExit();
        Assert.Equal(0, paused.ExitCode);
        Assert.Contains("not joining again: worker 1 (paused) was let go and worker 2 (newcomer) has taken its place", children.Tail("paused", 20));
        foreach (var process in new[] { server, steady, newcomer })
        {
            Assert.True(process.WaitForExit(TimeSpan.FromMinutes(2)), "the run did not end with the newcomer");
            process.WaitForExit();
        }
        Assert.Equal((0, 0, 0), (server.ExitCode, steady.ExitCode, newcomer.ExitCode));
    }

    [Fact]
    public async Task LocalStartsAServerThatDiesAgainFromItsCheckpointAndTheRunEndsAsIfNothingHappened()
    {
        using var scratch = new ScratchDirectory();
        Directory.CreateDirectory(scratch.File("logs"));
        using var children = new ChildProcesses(scratch.File("logs"), new Dictionary<string, string>());
        string[] run = ["local", "--workers", "2", "--model", "mlp", "--epochs", "8", "--data", "embedded"];
        var straight = children.Start("straight", [.. run, "--save", scratch.File("straight.safetensors"), "--log-dir", scratch.File("straight")]);
        Assert.True(straight.WaitForExit(TimeSpan.FromMinutes(3)), "the uninterrupted run did not end");
        straight.WaitForExit();
        Assert.Equal(0, straight.ExitCode);

        string checkpoint = scratch.File("model.safetensors");
        string metrics = scratch.File("metrics.jsonl");
        var launcher = children.Start("local", [.. run, "--max-restarts", "1", "--save", checkpoint, "--metrics", metrics, "--log-dir", scratch.File("cluster")]);
        var clock = Stopwatch.StartNew();
        while (!children.Tail("local", 40).Contains("epoch 2:", StringComparison.Ordinal) && clock.Elapsed < TimeSpan.FromSeconds(90) && !launcher.HasExited)
        {
            await Task.Delay(50);
        }
        int server = ChildrenOf(launcher.Id).FirstOrDefault(pid => CommandLine(pid).Contains("\0server\0", StringComparison.Ordinal));
        Assert.NotEqual(0, server);
        Assert.Equal(0, Kill(server, 9));

        Assert.True(launcher.WaitForExit(TimeSpan.FromMinutes(3)), "cluster local still runs 3 minutes after its server was killed");
        launcher.WaitForExit();
        string log = children.Tail("local", 60);
        Assert.True(launcher.ExitCode == 0, log);
        Assert.Matches("server died \\(exit code 137\\); server.1 starts in its place, resuming .* \\(epoch [2-7]\\) \\(restart 1 of 1\\)", log);
        // The workers waited for the server and joined it again; every epoch is in the metrics once,
        // and the weights are those of the run nothing happened to: the same steps, bit for bit.
        Assert.Equal([1, 2, 3, 4, 5, 6, 7, 8], File.ReadAllLines(metrics).Select(line => JsonDocument.Parse(line).RootElement.GetProperty("epoch").GetInt32()));
        Assert.Equal(Checkpoint.Load(scratch.File("straight.safetensors")).Model.Parameters, Checkpoint.Load(checkpoint).Model.Parameters);
        // The global step goes on across the restart: the new server's updates after the old one's.
        long straightUpdates = long.Parse(Regex.Match(children.Tail("straight", 60), "cluster finished: ([0-9,]+) updates,").Groups[1].Value, NumberStyles.AllowThousands, CultureInfo.InvariantCulture);
        var resumed = Regex.Match(log, "cluster finished: ([0-9,]+) updates after resuming at global step ([0-9,]+),");
        Assert.True(resumed.Success, log);
        Assert.Equal(straightUpdates, long.Parse(resumed.Groups[1].Value, NumberStyles.AllowThousands, CultureInfo.InvariantCulture)
            + long.Parse(resumed.Groups[2].Value, NumberStyles.AllowThousands, CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task AServerThatDiesLeavesTheCheckpointOfItsLastEvaluatedEpochAndTheRunResumesFromIt()
    {
        using var scratch = new ScratchDirectory();
        Directory.CreateDirectory(scratch.File("logs"));
        string checkpoint = scratch.File("model.safetensors");
        using var children = new ChildProcesses(scratch.File("logs"), new Dictionary<string, string>());
        var (server, address) = await StartServerAsync(children, "server", ["--workers", "1", "--model", "mlp", "--epochs", "100", "--data", "embedded", "--save", checkpoint]);
        children.Start("worker", ["worker", "--server", address]);

        // Once an epoch has been evaluated and written, the server is killed mid-run.
        var clock = Stopwatch.StartNew();
        while (!File.Exists(checkpoint) && clock.Elapsed < TimeSpan.FromMinutes(2) && !server.HasExited)
        {
            await Task.Delay(100);
        }
        Assert.True(File.Exists(checkpoint), "no checkpoint written 2 minutes into the run");
        server.Kill();
        server.WaitForExit();

        var loaded = Checkpoint.Load(checkpoint);
        int epoch = int.Parse(loaded.Metadata["cluster.epochs"], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(epoch, 1, 99);
        double recorded = double.Parse(loaded.Metadata["cluster.test_accuracy"], System.Globalization.CultureInfo.InvariantCulture);
        var data = FashionMnist.Load("embedded", NormalizationMetadata.Read(loaded.Metadata, checkpoint));
        // Whole, whatever the kill interrupted: each epoch's file replaces the last by a rename.
        Assert.Equal(recorded, Trainer.Evaluate(loaded.Model, data.Test).Accuracy, 4);

        // And the run goes on from it: a new server resumes after that epoch and trains the next.
        string next = (epoch + 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var (resumed, again) = await StartServerAsync(children, "resumed", ["--workers", "1", "--model", "mlp", "--epochs", next, "--data", "embedded", "--resume", checkpoint, "--save", checkpoint]);
        children.Start("worker-again", ["worker", "--server", again]);
        Assert.True(resumed.WaitForExit(TimeSpan.FromMinutes(2)), "the resumed server still runs 2 minutes after it started");
        resumed.WaitForExit();
        string log = children.Tail("resumed", 40);
        Assert.True(resumed.ExitCode == 0, log);
        Assert.Contains($"resuming {checkpoint} after epoch {epoch}", log);
        Assert.Equal(next, Checkpoint.Load(checkpoint).Metadata["cluster.epochs"]);
    }

    [Fact]
    public async Task ASyncClusterResumedFromItsCheckpointEndsWithTheWeightsOfOneNeverStopped()
    {
        using var scratch = new ScratchDirectory();
        // Dropout: each worker's masks must go on as they would have (they depend on seed, epoch and shard).
        string spec = scratch.File("dropout.txt");
        File.WriteAllText(spec, "input 1 28 28\nflatten\ndense 64\nrelu\ndropout 0.25\ndense 10\n");
        var training = new TrainingOptions { Model = spec, Epochs = 2, Data = "embedded", Optimizer = "adam", Schedule = "step:1:0.5" };
        async Task<string> RunAsync(TrainingOptions t, string name)
        {
            var (result, printed) = await RunTwoSyncWorkersAsync(t, scratch.File($"logs-{name}"));
            Assert.True(result.ExitCode == 0, printed);
            return printed;
        }

        string straight = scratch.File("straight.safetensors");
        await RunAsync(training with { Save = straight }, "straight");
        string resumable = scratch.File("resumable.safetensors");
        string metrics = scratch.File("metrics.jsonl");
        await RunAsync(training with { Epochs = 1, Save = resumable, Metrics = metrics }, "first");
        Assert.Equal("1", Checkpoint.Load(resumable).Metadata["cluster.epochs"]);
        string output = await RunAsync(training with { Resume = resumable, Save = resumable, Metrics = metrics }, "resumed");

        Assert.Contains($"resuming {resumable}", output);
        // One epoch trained, numbered 2, and the file then holds what the run never stopped holds.
        Assert.Contains("epoch 2:", output);
        Assert.DoesNotContain("epoch 1:", output);
        Assert.Equal(File.ReadAllBytes(straight), File.ReadAllBytes(resumable));
        // The metrics file covers the whole run: the first run's epoch, then the resumed one's.
        Assert.Equal([1, 2], File.ReadAllLines(metrics).Select(line => JsonDocument.Parse(line).RootElement.GetProperty("epoch").GetInt32()));
    }
}
