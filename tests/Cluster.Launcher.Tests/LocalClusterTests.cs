using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using Cluster.Checkpoints;
using Cluster.Data;
using Cluster.Launcher.Commands;
using Cluster.ParameterServer;
using Cluster.Tests;
using Cluster.Training;
using Cluster.Wire;

namespace Cluster.Launcher.Tests;

/// <summary>
/// A whole cluster as real processes on loopback: a parameter server and worker processes started
/// by <c>cluster local</c>, trained on the embedded data, and all of them gone afterwards.
/// </summary>
[Collection(nameof(ProcessTests))]
public sealed partial class LocalClusterTests
{
    [Fact]
    public async Task SyncClusterOfProcessesTrainsAndLeavesNoProcessBehind()
    {
        using var scratch = new ScratchDirectory();
        string metrics = scratch.File("metrics.jsonl");
        string checkpoint = scratch.File("model.safetensors");
        var (result, output) = await RunTwoSyncWorkersAsync(new TrainingOptions { Model = "mlp", Epochs = 2, Data = "embedded", Metrics = metrics, Save = checkpoint }, scratch.File("logs"));

        Assert.True(result.ExitCode == 0, output);
        Assert.Equal(3, result.ProcessIds.Count);
        foreach (int pid in result.ProcessIds)
        {
            Assert.False(IsRunning(pid), $"process {pid} of the cluster is still running");
        }
        string[] lines = File.ReadAllLines(metrics);
        Assert.Equal(2, lines.Length);
        using var last = JsonDocument.Parse(lines[^1]);
        Assert.Equal("sync", last.RootElement.GetProperty("mode").GetString());
        Assert.Equal(2, last.RootElement.GetProperty("workers").GetInt32());
        // Each line's time split is its epoch's own: every epoch has some, and together they are
        // the run's, short of each worker's last step (a push reports the steps before it).
        double[] computeMs = [.. lines.Select(line => JsonDocument.Parse(line).RootElement.GetProperty("compute_ms").GetDouble())];
        Assert.All(computeMs, ms => Assert.True(ms > 0, $"an epoch with {ms} ms of compute"));
        double runComputeMs = result.Status!.Workers.Sum(w => w.Time.ComputeMs);
        Assert.InRange(computeMs.Sum(), 0.8 * runComputeMs, runComputeMs * (1 + 1e-9));
        double accuracy = last.RootElement.GetProperty("test_accuracy").GetDouble();
        Assert.True(accuracy >= 0.8, $"test accuracy {accuracy:P2} after 2 epochs");
        Assert.Contains("staleness histogram {0:", output);

        // The checkpoint holds the weights the server evaluated last: the same accuracy here.
        Assert.Contains($"saved {checkpoint}", output);
        var loaded = Checkpoint.Load(checkpoint);
        Assert.Equal(("2", "sync", "2"), (loaded.Metadata["cluster.epochs"], loaded.Metadata["cluster.mode"], loaded.Metadata["cluster.workers"]));
        var data = FashionMnist.Load("embedded", NormalizationMetadata.Read(loaded.Metadata, checkpoint));
        Assert.Equal(accuracy, Trainer.Evaluate(loaded.Model, data.Test).Accuracy, 9);
    }

    [Fact]
    public async Task EarlyStoppingEndsTheClusterRunAndKeepsTheBestEpochsWeights()
    {
        using var scratch = new ScratchDirectory();
        string metrics = scratch.File("metrics.jsonl");
        string checkpoint = scratch.File("model.safetensors");
        // A learning rate high enough that validation accuracy stalls within the 40 epochs.
        var (result, output) = await RunTwoSyncWorkersAsync(
            new TrainingOptions { Model = "mlp", Epochs = 40, Data = "embedded", LearningRate = 0.003f, Patience = 2, Metrics = metrics, Save = checkpoint }, scratch.File("logs"));

        Assert.True(result.ExitCode == 0, output);
        var epochs = File.ReadAllLines(metrics).Select(line => JsonDocument.Parse(line).RootElement).ToArray();
        var best = epochs.MaxBy(e => e.GetProperty("validation_accuracy").GetDouble());
        int bestEpoch = best.GetProperty("epoch").GetInt32();
        // It stopped once two epochs had not beaten the best, and said which weights it kept.
        Assert.Equal(bestEpoch + 2, epochs.Length);
        Assert.Contains($"early stopping: validation accuracy stopped improving; keeping the weights of epoch {bestEpoch}", output);
        var loaded = Checkpoint.Load(checkpoint);
        Assert.Equal(bestEpoch.ToString(System.Globalization.CultureInfo.InvariantCulture), loaded.Metadata["cluster.epochs"]);
        var data = FashionMnist.Load("embedded", NormalizationMetadata.Read(loaded.Metadata, checkpoint));
        Assert.Equal(best.GetProperty("test_accuracy").GetDouble(), Trainer.Evaluate(loaded.Model, data.Test).Accuracy, 9);
    }

    [Fact]
    public async Task AStragglerIsNamedInTheServersLogAndTheRunsSummary()
    {
        using var scratch = new ScratchDirectory();
        // worker-1 waits 30 ms more than worker-0 every step: about 160 steps of some 35 ms.
        var (result, output) = await RunTwoSyncWorkersAsync(new TrainingOptions { Model = "mlp", Epochs = 2, Data = "embedded" }, scratch.File("logs"), new() { [1] = 30 });

        Assert.True(result.ExitCode == 0, output);
        Assert.Matches("worker-1: .*; a straggler at the end: its gradients came [0-9.]+ ms after each step's first", output);
        Assert.DoesNotMatch("worker-0: .*straggler", output);
        Assert.Matches(@"worker [0-9]+ \(worker-1\) is a straggler", File.ReadAllText(Path.Combine(scratch.File("logs"), "server.log")));
    }

    [Fact]
    public void EarlyStoppingNeedsAnEvaluationAfterEachEpoch()
    {
        var (code, output, error) = CliRunner.Run("local", "--patience", "2", "--evaluate", "end", "--data", "embedded");
        Assert.Equal(Cli.UsageError, code);
        Assert.Contains("--patience 2 needs --evaluate epoch", error);
        Assert.DoesNotContain("local cluster", output);
    }

    [Fact]
    public void BenchScalingRunsEachWorkerCountAndWritesTheReport()
    {
        using var scratch = new ScratchDirectory();
        string outDir = scratch.File("scaling");

        var (code, output, error) = CliRunner.Run("bench", "scaling", "--workers", "1,2", "--model", "mlp", "--mode", "sync",
            "--compute", "emulated", "--emulated-compute-ms", "2", "--samples-per-run", "1", "--repeats", "2", "--out", outDir);

        Assert.True(code == 0, output + error);
        string csv = Path.Combine(outDir, "scaling-mlp-sync-emulated.csv");
        string[] rows = File.ReadAllLines(csv);
        Assert.Equal(3, rows.Length);
        Assert.EndsWith(",runs,pass_ms", rows[0]);
        foreach (string row in rows[1..])
        {
            string[] cells = row.Split(',');
            double imagesPerSec = double.Parse(cells[6], System.Globalization.CultureInfo.InvariantCulture);
            double efficiency = double.Parse(cells[8], System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(imagesPerSec > 0 && efficiency > 0.05 && efficiency < 2, row);
            Assert.Equal("2", cells[^2]);
            // The emulated pass waits its 2 ms to the deadline (not to the millisecond below it), and a busy machine only adds to it.
            double passMs = double.Parse(cells[^1], System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(passMs >= 1.95 && passMs < 50, row);
        }
        // The counts took turns: 1, 2, 1, 2, each run with its own logs.
        string[] order = [.. output.Split('\n').Where(l => l.Contains(" of 2: ")).Select(l => l.Trim()[..l.Trim().IndexOf(':')])];
        Assert.Equal(["1 worker(s), run 1 of 2", "2 worker(s), run 1 of 2", "1 worker(s), run 2 of 2", "2 worker(s), run 2 of 2"], order);
        Assert.True(Directory.Exists(Path.Combine(outDir, "logs", "workers-2-run-2")));
        Assert.Contains("median of 2 runs", output);
        Assert.True(new FileInfo(Path.ChangeExtension(csv, ".png")).Length > 1000);

        // Each count's median run, step by step: every step once, the second half marked as timed.
        string steps = Path.Combine(outDir, "scaling-mlp-sync-emulated-steps.csv");
        Assert.True(new FileInfo(Path.ChangeExtension(steps, ".png")).Length > 1000);
        var stepRows = File.ReadAllLines(steps)[1..].Select(r => r.Split(',')).ToList();
        foreach (var (workers, row) in new[] { ("1", rows[1]), ("2", rows[2]) })
        {
            // A step is the time between two updates.
            long intervals = long.Parse(row.Split(',')[18], System.Globalization.CultureInfo.InvariantCulture) - 1;
            var mine = stepRows.Where(r => r[0] == workers).ToList();
            Assert.Equal(intervals, mine.Sum(r => long.Parse(r[2], System.Globalization.CultureInfo.InvariantCulture)));
            Assert.Equal(intervals - intervals / 2, mine.Count(r => r[4] == "1"));
            Assert.All(mine, r => Assert.True(double.Parse(r[3], System.Globalization.CultureInfo.InvariantCulture) > 0, string.Join(',', r)));
        }
    }

    [Fact]
    public void TheTimeSplitShownIsOverTheTimedHalfWhenTheWorkersReportIt()
    {
        static WorkerStatus Worker(bool steady) => new()
        {
            Time = new TimeSplit { ComputeMs = 1000, PushMs = 10, PullMs = 20, WaitMs = 30, Steps = 100, Samples = 6400 },
            SteadyTime = steady ? new TimeSplit { ComputeMs = 400, PushMs = 4, PullMs = 8, WaitMs = 12, Steps = 50, Samples = 3200 - 32 } : null,
        };
        var status = new StatusReply { Version = 101, MeanStepMs = 10.6, SteadyStepMs = 10, Samples = 6400 };
        status.Workers.Add(Worker(steady: true));
        var point = BenchScalingCommand.ToPoint(1, status, 64);
        Assert.Equal((400.0, 4.0, 8.0, 12.0), (point.ComputeMs, point.PushMs, point.PullMs, point.WaitMs));
        // 49.5 full batches of 64: the half batch of the steady half counts as half a pass.
        Assert.Equal(400.0 / 49.5, point.PassMs, 9);

        status.Workers.Clear();
        status.Workers.Add(Worker(steady: false));
        point = BenchScalingCommand.ToPoint(1, status, 64);
        Assert.Equal((1000.0, 10.0, 20.0), (point.ComputeMs, point.PushMs, point.PullMs));
        Assert.Equal(10.0, point.PassMs);
    }

    [Fact]
    public async Task StoppingTheViewDuringAStatusCallIsACancellationNotAFailure()
    {
        // A server that accepts the connection and never answers: the status call is in flight when Ctrl+C comes.
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        using var client = new Cluster.Worker.ParameterClient($"http://127.0.0.1:{((IPEndPoint)silent.LocalEndpoint).Port}");
        var view = new ClusterView(TextWriter.Null, new ServerOptions(), live: false, quiet: true);
        using var stop = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => view.FollowAsync(client, Process.GetCurrentProcess(), stop.Token).WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public void AResumedRunsProgressCountsTheEpochsItsCheckpointHadDone()
    {
        Assert.Equal(0.25, ClusterView.Progress(new StatusReply { TotalSamples = 400, Samples = 100, TotalEpochs = 4 }));
        // Resumed after epoch 2 of 4, halfway through what is left: three quarters of the run.
        Assert.Equal(0.75, ClusterView.Progress(new StatusReply { TotalSamples = 200, Samples = 100, TotalEpochs = 4, StartEpoch = 2 }));
        Assert.Equal(0.5, ClusterView.Progress(new StatusReply { TotalSamples = 200, Samples = 0, TotalEpochs = 4, StartEpoch = 2 }));
    }

    [Fact]
    public void TheStepPlotAveragesEachPointWithItsNeighbours()
    {
        Assert.Equal([1.5, 2, 3, 3.5], ScalingReport.MovingMean([1f, 2f, 3f, 4f], 3));
        Assert.Equal([1.0, 2, 3], ScalingReport.MovingMean([1f, 2f, 3f], 1));
    }

    [Fact]
    public async Task AServerWithATokenServesOnlyTheWorkersThatHaveIt()
    {
        using var scratch = new ScratchDirectory();
        Directory.CreateDirectory(scratch.File("logs"));
        string token = Cluster.Wire.ClusterToken.Generate();
        using var children = new ChildProcesses(scratch.File("logs"), new Dictionary<string, string> { [Cluster.Wire.ClusterToken.EnvironmentVariable] = token });
        var (server, address) = await StartServerAsync(children, "server", ["--workers", "1", "--model", "mlp", "--epochs", "1", "--data", "embedded"], token);
        // Both workers inherit the server's token from the environment; --token-file takes
        // precedence over it: another token for the stranger, the same one for the member.
        string wrong = scratch.File("wrong-token");
        File.WriteAllText(wrong, Cluster.Wire.ClusterToken.Generate());
        string right = scratch.File("token");
        File.WriteAllText(right, token + "\n");

        // `status` without the token (this process has none in its environment) is refused too.
        var (statusCode, _, statusError) = CliRunner.Run("status", "--server", address);
        Assert.Equal(1, statusCode);
        Assert.Contains("refused the status request", statusError);

        var stranger = children.Start("stranger", ["worker", "--server", address, "--token-file", wrong]);
        Assert.True(stranger.WaitForExit(TimeSpan.FromSeconds(30)), "a worker with the wrong token still runs after 30 s");
        stranger.WaitForExit();
        Assert.Equal(1, stranger.ExitCode);
        Assert.Contains("worker stopped: Unauthenticated: call with a wrong cluster token", children.Tail("stranger", 20));

        var worker = children.Start("worker", ["worker", "--server", address, "--token-file", right]);
        Assert.True(worker.WaitForExit(TimeSpan.FromMinutes(2)) && server.WaitForExit(TimeSpan.FromSeconds(30)), "the run with the right token did not finish");
        worker.WaitForExit();
        server.WaitForExit();
        Assert.Equal(0, worker.ExitCode);
        Assert.Equal(0, server.ExitCode);
        string log = children.Tail("server", 40);
        Assert.Contains("cluster token required", log);
        Assert.Contains("2 call(s) refused for their cluster token", log);
    }

    [Fact]
    public async Task WorkersGetTheRanksTheyAskForWhateverOrderTheyJoinInAndARankOutOfRangeIsRefused()
    {
        using var scratch = new ScratchDirectory();
        Directory.CreateDirectory(scratch.File("logs"));
        using var children = new ChildProcesses(scratch.File("logs"));
        var (server, address) = await StartServerAsync(children, "server", ["--workers", "2", "--model", "mlp", "--epochs", "1", "--data", "embedded"]);

        var outside = children.Start("outside", ["worker", "--server", address, "--rank", "2"]);
        Assert.True(outside.WaitForExit(TimeSpan.FromSeconds(30)), "a worker asking for rank 2 of 2 still runs after 30 s");
        outside.WaitForExit();
        Assert.Equal(1, outside.ExitCode);
        Assert.Contains("worker stopped: InvalidArgument: rank 2 is out of range: this cluster's workers are ranks 0 to 1", children.Tail("outside", 20));

        // Rank 1 joins first and waits; rank 0 joins after it.
        var second = children.Start("second", ["worker", "--server", address, "--name", "second", "--rank", "1"]);
        var clock = Stopwatch.StartNew();
        while (!children.Tail("server", 20).Contains("worker 1 joined: second (1/2)", StringComparison.Ordinal) && clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(50);
        }
        var first = children.Start("first", ["worker", "--server", address, "--name", "first", "--rank", "0"]);
        Assert.True(first.WaitForExit(TimeSpan.FromMinutes(2)) && second.WaitForExit(TimeSpan.FromMinutes(2)) && server.WaitForExit(TimeSpan.FromSeconds(30)), "the run did not finish");
        first.WaitForExit();
        second.WaitForExit();
        Assert.Equal((0, 0), (first.ExitCode, second.ExitCode));
        string log = children.Tail("server", 40);
        Assert.Contains("worker 1 joined: second (1/2)", log);
        Assert.Contains("worker 0 joined: first (2/2)", log);
        Assert.Contains("refused: rank 2 is out of range", log);
        Assert.Contains("shard 1 of 2", children.Tail("second", 40));
        Assert.Contains("shard 0 of 2", children.Tail("first", 40));
    }

    [Fact]
    public async Task OverTlsAWorkerTrustingTheServersCertificateTrainsAndOneThatDoesNotIsRefusedInOneLine()
    {
        using var scratch = new ScratchDirectory();
        Directory.CreateDirectory(scratch.File("logs"));
        var (certificate, key) = TestCertificates.WriteSelfSigned(scratch, "server");
        using var children = new ChildProcesses(scratch.File("logs"));
        var (server, address) = await StartServerAsync(children, "server", ["--workers", "1", "--model", "mlp", "--epochs", "1", "--data", "embedded", "--tls-cert", certificate, "--tls-key", key], tlsAuthority: certificate);
        Assert.StartsWith("https://", address);

        var untrusting = children.Start("untrusting", ["worker", "--server", address]);
        Assert.True(untrusting.WaitForExit(TimeSpan.FromSeconds(30)), "a worker that does not trust the server still runs after 30 s");
        untrusting.WaitForExit();
        Assert.Equal(1, untrusting.ExitCode);
        Assert.Contains($"the parameter server at {address} is not trusted over TLS (", children.Tail("untrusting", 20));
        Assert.Contains("give --tls-ca", children.Tail("untrusting", 20));

        var (statusCode, statusOutput, statusError) = CliRunner.Run("status", "--server", address, "--tls-ca", certificate);
        Assert.True(statusCode == 0, statusError);
        Assert.Contains("so far:", statusOutput);

        var worker = children.Start("worker", ["worker", "--server", address, "--tls-ca", certificate]);
        Assert.True(worker.WaitForExit(TimeSpan.FromMinutes(2)) && server.WaitForExit(TimeSpan.FromSeconds(30)), "the run over TLS did not finish");
        worker.WaitForExit();
        server.WaitForExit();
        Assert.Equal((0, 0), (worker.ExitCode, server.ExitCode));
        string log = children.Tail("server", 40);
        Assert.Contains("TLS with server's certificate", log);
        Assert.Matches(@"epoch 1: .*test accuracy (7[5-9]|[89]\d)\.\d\d %", log);
    }

    [Fact]
    public async Task AWorkerWhoseDataIsNotTheServersRefusesInOneLineAndLeavesItsPlaceToOneWhoseIs()
    {
        using var scratch = new ScratchDirectory();
        Directory.CreateDirectory(scratch.File("logs"));
        // The embedded subset's own files, elsewhere on "this machine": the same arrays, so the same data.
        string subset = Path.Combine(DeployScriptTests.RepositoryRoot(), "data", "fashion-mnist-subset");
        string same = Directory.CreateDirectory(scratch.File("same")).FullName;
        string other = Directory.CreateDirectory(scratch.File("other")).FullName;
        foreach (string file in Directory.GetFiles(subset, "*.gz"))
        {
            File.Copy(file, Path.Combine(same, Path.GetFileName(file)));
            File.Copy(file, Path.Combine(other, Path.GetFileName(file)));
        }
        // And a copy with one training label changed (the uncompressed file is read before the .gz).
        using (var gzip = new System.IO.Compression.GZipStream(File.OpenRead(Path.Combine(subset, "train-labels-idx1-ubyte.gz")), System.IO.Compression.CompressionMode.Decompress))
        using (var labels = new MemoryStream())
        {
            gzip.CopyTo(labels);
            byte[] bytes = labels.ToArray();
            bytes[8] = (byte)((bytes[8] + 1) % 10);
            File.WriteAllBytes(Path.Combine(other, "train-labels-idx1-ubyte"), bytes);
        }
        using var children = new ChildProcesses(scratch.File("logs"));
        var (server, address) = await StartServerAsync(children, "server", ["--workers", "1", "--model", "mlp", "--epochs", "1", "--data", "embedded"]);

        var misled = children.Start("misled", ["worker", "--server", address, "--data", other]);
        Assert.True(misled.WaitForExit(TimeSpan.FromSeconds(30)), "a worker with other data still runs after 30 s");
        misled.WaitForExit();
        Assert.Equal(2, misled.ExitCode);
        Assert.Matches($"this machine's data is not the server's: {Regex.Escape(other)} \\(10,000 train / 2,000 test\\) \\(fingerprint [0-9a-f]{{16}}\\) against the server's embedded subset .*give this worker --data DIR", children.Tail("misled", 20));

        var worker = children.Start("worker", ["worker", "--server", address, "--data", same]);
        Assert.True(worker.WaitForExit(TimeSpan.FromMinutes(2)) && server.WaitForExit(TimeSpan.FromSeconds(30)), "the run did not finish after the worker with other data left");
        worker.WaitForExit();
        server.WaitForExit();
        Assert.Equal((0, 0), (worker.ExitCode, server.ExitCode));
        string log = children.Tail("server", 40);
        Assert.Contains("in the place of worker 0, which left", log);
        Assert.Matches(@"epoch 1: .*test accuracy (7[5-9]|[89]\d)\.\d\d %", log);
    }

    /// <summary>
    /// Runs <c>local</c> with two sync workers on loopback for <paramref name="training"/> (worker i
    /// slowed by <paramref name="slowWorkers"/>[i] ms), within 3 minutes: its result and what it printed.
    /// </summary>
    private static async Task<(LocalCommand.Result Result, string Output)> RunTwoSyncWorkersAsync(TrainingOptions training, string logs, Dictionary<int, double>? slowWorkers = null)
    {
        var options = new ServerOptions { Training = training, Workers = 2, Mode = "sync", Host = "127.0.0.1", Port = 0 };
        var output = new StringWriter();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var result = await LocalCommand.RunAsync(options, slowWorkers ?? [], logs, output, live: false, quiet: false, timeout.Token);
        return (result, output.ToString());
    }

    [Fact]
    public async Task StatusShowsARunningServerAndWatchFollowsItToTheEnd()
    {
        using var scratch = new ScratchDirectory();
        Directory.CreateDirectory(scratch.File("logs"));
        using var children = new ChildProcesses(scratch.File("logs"), new Dictionary<string, string>());
        var (server, address) = await StartServerAsync(children, "server", ["--workers", "1", "--model", "mlp", "--epochs", "1", "--data", "embedded"]);

        var (code, output, error) = CliRunner.Run("status", "--server", address);
        Assert.True(code == 0, error);
        Assert.Contains("mode sync  workers 0 active of 0  global step 0", output);
        Assert.Contains("so far: 0 updates", output);

        var watch = children.Start("watch", ["status", "--server", address, "--watch"]);
        var worker = children.Start("worker", ["worker", "--server", address, "--name", "solo"]);
        Assert.True(watch.WaitForExit(TimeSpan.FromMinutes(2)), "status --watch still runs 2 minutes after the run started");
        watch.WaitForExit();
        Assert.True(worker.WaitForExit(TimeSpan.FromSeconds(30)) && server.WaitForExit(TimeSpan.FromSeconds(30)), "the run did not end");
        Assert.Equal(0, watch.ExitCode);
        string log = children.Tail("watch", 40);
        Assert.Contains("│ solo", log);
        Assert.Contains("finished: 157 updates, 10,000 samples", log);
    }

    [Theory]
    [InlineData("--workers", "0", "--workers 0")]
    [InlineData("--mode", "eventual", "eventual")]
    [InlineData("--mode", "ssp:x", "ssp:x")]
    [InlineData("--backup-workers", "-1", "--backup-workers -1")]
    [InlineData("--evaluate", "sometimes", "--evaluate 'sometimes'")]
    [InlineData("--emulated-chunk-ready-ms", "1,x", "'x' is not a time")]
    [InlineData("--chunk-floats", "100", "--chunk-floats 100")]
    [InlineData("--save", "/no/such/dir/model.safetensors", "directory '/no/such/dir' does not exist")]
    [InlineData("--init", "/no/such/dir/model.safetensors", "--init: checkpoint '/no/such/dir/model.safetensors' does not exist")]
    [InlineData("--resume", "/no/such/dir/model.safetensors", "--resume: checkpoint '/no/such/dir/model.safetensors' does not exist")]
    [InlineData("--max-restarts", "-1", "--max-restarts -1")]
    [InlineData("--worker-timeout", "1", "--worker-timeout 1")]
    [InlineData("--prometheus-port", "70000", "--prometheus-port 70000")]
    [InlineData("--patience", "0", "--patience 0")]
    [InlineData("--validation", "1.5", "--validation 1.5")]
    public void LocalRejectsBadFlagsBeforeStartingAnything(string flag, string value, string named)
    {
        var (code, output, error) = CliRunner.Run("local", flag, value, "--data", "embedded");
        Assert.Equal(Cli.UsageError, code);
        Assert.Contains(named, error);
        Assert.DoesNotContain("local cluster", output);
    }

    [Theory]
    [InlineData("--repeats", "0", "--repeats 0")]
    [InlineData("--repeats", "10", "--repeats 10")]
    [InlineData("--workers", "1,0", "'0' is not a worker count")]
    public void BenchScalingRejectsBadFlagsBeforeStartingAnything(string flag, string value, string named)
    {
        var (code, output, error) = CliRunner.Run("bench", "scaling", flag, value, "--compute", "emulated", "--emulated-compute-ms", "2");
        Assert.Equal(Cli.UsageError, code);
        Assert.Contains(named, error);
        Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.DoesNotContain("worker(s)", output);
    }

    [Fact]
    public void ScalingReportsTheMedianRunOfEachCountWithItsOwnTimeSplit()
    {
        static ScalingPoint Run(double imagesPerSec, double pushMs) => new(8, imagesPerSec, imagesPerSec, 100, pushMs, 10, 0, 0, 300, 19_200, 10, 30);

        var median = BenchScalingCommand.MedianRun([Run(900, 1), Run(1100, 3), Run(1000, 2)]);
        Assert.Equal((1000, 2), (median.ImagesPerSec, median.PushMs));
        // An even number of runs: the lower middle one, a run that happened, not an average.
        Assert.Equal(1000, BenchScalingCommand.MedianRun([Run(1100, 3), Run(1000, 2)]).ImagesPerSec);
    }

    [Fact]
    public void ServerWithItsMetricsPortInUseNamesThatFlagInOneLine()
    {
        using var holder = new TcpListener(IPAddress.Loopback, 0);
        holder.Start();
        int port = ((IPEndPoint)holder.LocalEndpoint).Port;
        var (code, _, error) = CliRunner.Run("server", "--host", "127.0.0.1", "--port", "0", "--prometheus-port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--data", "embedded", "--model", "mlp");
        Assert.Equal(Cli.UsageError, code);
        Assert.Contains($"--prometheus-port {port}", error);
        Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void ServerOnAPortInUseSaysSoInOneLine()
    {
        using var holder = new TcpListener(IPAddress.Loopback, 0);
        holder.Start();
        int port = ((IPEndPoint)holder.LocalEndpoint).Port;
        var (code, _, error) = CliRunner.Run("server", "--host", "127.0.0.1", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--data", "embedded", "--model", "mlp");
        Assert.Equal(Cli.UsageError, code);
        Assert.Contains($"--port {port}", error);
        Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}

/// <summary>Tests that start processes run one at a time.</summary>
[CollectionDefinition(nameof(ProcessTests), DisableParallelization = true)]
public sealed class ProcessTests;
