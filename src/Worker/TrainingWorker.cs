using System.Diagnostics;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Cluster.Data;
using Cluster.Models;
using Cluster.Optim;
using Cluster.Tensors;
using Cluster.Training;
using Cluster.Wire;
using Grpc.Core;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Cluster.Worker;

/// <summary>
/// A cluster worker: joins the parameter server, then repeats pull → forward/backward on its
/// shard → push until the server says the run is over, and reports its time split (compute, push,
/// pull, waiting) in heartbeats. An unreachable server is reported in one line and retried with
/// back-off.
/// </summary>
public sealed class TrainingWorker(IOptions<WorkerOptions> options, WorkerOutcome outcome, IHostApplicationLifetime lifetime, ILogger<TrainingWorker> logger)
    : BackgroundService
{
    /// <summary>Times a worker joins again (let go by its server, or its server started again) before it gives up.</summary>
    private const int MaxRejoins = 20;

    private readonly WorkerOptions _options = options.Value;
    private readonly TimeSplitClock _clock = new();

    /// <summary>The rank this worker last joined under, which it names when it joins again.</summary>
    private int? _joinedAs;
    private readonly X509Certificate2? _authority = options.Value.TlsAuthority is string file ? ClusterTls.LoadAuthority(file) : null;

    /// <inheritdoc/>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            for (int rejoins = 0; ; rejoins++)
            {
                try
                {
                    outcome.ExitCode = await RunAsync(stoppingToken).ConfigureAwait(false);
                    break;
                }
                catch (Exception e) when (rejoins < MaxRejoins && !stoppingToken.IsCancellationRequested && WhyJoinAgain(e) is string why)
                {
                    logger.LogWarning("{Why}: joining again", why);
                }
                catch (RpcException e) when (rejoins > 0 && e.StatusCode == StatusCode.FailedPrecondition)
                {
                    // The run ended, or another worker took this one's place, while it was away: its part is done.
                    logger.LogInformation("not joining again: {Detail}", e.Status.Detail);
                    outcome.ExitCode = 0;
                    break;
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            outcome.ExitCode = 130;
        }
        catch (Exception e) when (e is RpcException or IOException or InvalidDataException or HttpRequestException)
        {
            // NOTE: a stream cut off mid-read (the server gone) raises InvalidDataException (a pull
            // that ended short) or HttpIOException past gRPC's own status in a background read.
            logger.LogError("worker stopped: {Message}", e switch
            {
                RpcException r => $"{r.StatusCode}: {r.Status.Detail}",
                InvalidDataException => e.Message,
                _ => $"lost the connection to the parameter server at {_options.Server}: {e.Message}",
            });
            outcome.ExitCode = 1;
        }
        finally
        {
            lifetime.StopApplication();
        }
    }

    /// <summary>
    /// A worker that took a departed one's place goes on in its shard from where the run is: the
    /// weights version it first pulled counts the steps every worker has taken in sync mode (one
    /// each per version), about one in N of them otherwise. Returns the epoch it is in.
    /// </summary>
    /// <summary>
    /// The images a worker's shard is cut from: the training set less the validation split the
    /// server holds out by the seed (<see cref="TrainingSettings.ValidationFraction"/>), so that no
    /// worker ever trains on an image early stopping judges by.
    /// </summary>
    public static Dataset TrainingSet(FashionMnist data, TrainingSettings settings) =>
        settings.ValidationFraction > 0 ? data.Train.SplitValidation(settings.ValidationFraction, settings.Seed).Train : data.Train;

    private int TakeOverShard(BatchIterator batches, Trainer trainer, Sequential model, JoinReply join, long version, bool sync)
    {
        var settings = join.Settings;
        long stepsDone = sync ? version : version / Math.Max(1, join.WorkerCount);
        int epoch = settings.StartEpoch + (int)(stepsDone / batches.BatchesPerEpoch);
        int skip = (int)(stepsDone % batches.BatchesPerEpoch);
        trainer.Images.SetBatchSize(settings.Batch);
        batches.StartEpoch(epoch);
        model.SeedEpoch(settings.Seed, epoch, join.ShardIndex);
        for (int i = 0; i < skip; i++)
        {
            batches.Next(trainer.Images.Span, trainer.Labels);
        }
        logger.LogInformation("worker {Id} takes over shard {Shard} at version {Version}: epoch {Epoch} from batch {Batch}", join.WorkerId, join.ShardIndex, version, epoch, skip);
        return epoch;
    }

    /// <summary>
    /// Why a worker whose run broke off with <paramref name="e"/> should join again, or null when it
    /// should not. The server let it go while it was alive (silent past --worker-timeout: a pause, a
    /// cut link): it joins in its own place if nobody took it, and goes on from where the run is. Or
    /// the server went away (killed, crashed): one started again, as a resumed run from its
    /// checkpoint, takes the workers that join within the connect timeout.
    /// </summary>
    private string? WhyJoinAgain(Exception e) => e switch
    {
        RpcException { StatusCode: StatusCode.NotFound } r => $"the parameter server has let this worker go ({r.Status.Detail})",
        RpcException { StatusCode: StatusCode.Unavailable or StatusCode.Internal or StatusCode.Unknown } r => $"lost the parameter server at {_options.Server} ({r.StatusCode}: {r.Status.Detail}); waiting for it to come back",
        IOException or InvalidDataException or HttpRequestException => $"lost the parameter server at {_options.Server} ({e.Message}); waiting for it to come back",
        _ => null,
    };

    private async Task<int> RunAsync(CancellationToken cancel)
    {
        // NOTE: sized for the largest chunk the server may be configured with (4 Mi floats).
        using var client = new ParameterClient(_options.Server, maxMessageBytes: 4 * 1024 * 1024 * sizeof(float) + 64 * 1024, token: _options.Token, authority: _authority);
        var join = await JoinWithRetryAsync(client, cancel).ConfigureAwait(false);
        if (join is null)
        {
            return 1;
        }
        _joinedAs = join.WorkerId;
        var settings = join.Settings;
        int threads = _options.Threads > 0 ? _options.Threads : Math.Max(1, settings.Threads);
        using var team = new ThreadTeam(threads);
        var spec = ModelSpec.Parse(join.ModelSpec);
        var model = new Sequential(spec) { Team = team };
        if (model.ParameterCount != join.ParameterCount)
        {
            throw new InvalidDataException($"the server's model has {join.ParameterCount} parameters but its spec builds {model.ParameterCount}");
        }
        if (LoadServersData(settings) is not FashionMnist data)
        {
            // Its place is free for a worker that has the data; exit 2, as for a bad flag.
            await LeaveAsync(client, join.WorkerId).ConfigureAwait(false);
            return 2;
        }
        bool emulated = settings.Compute == "emulated";
        // The trainer's optimizer is never stepped here: the server owns the update.
        var trainer = new Trainer(model, Optimizer.Create(new OptimizerOptions { Name = "sgd" }, model.NamedParameters), settings.Batch);
        var train = TrainingSet(data, settings);
        var batches = new BatchIterator(train, settings.Batch, settings.Seed, shuffle: true, join.ShardIndex, join.ShardCount)
        {
            Augmentation = string.IsNullOrEmpty(settings.Augment)
                ? null
                : Augmentation.Parse(settings.Augment, data.Train.Channels, data.Train.Height, data.Train.Width, data.Normalization.Background),
        };
        var gradientBytes = FloatBytes.AsBytes(model.Gradients);
        logger.LogInformation("worker {Id} ({Place}): {Mode}, model {Params:N0} parameters, shard {Shard} of {Shards} ({Samples:N0} samples), batch {Batch}, {Threads} thread(s), compute {Compute}",
            join.WorkerId, join.Replacement ? "in the place of a worker that left" : $"{join.WorkerId + 1} of {join.WorkerCount}", settings.Mode, model.ParameterCount, join.ShardIndex, join.ShardCount, batches.SampleCount, settings.Batch, threads, settings.Compute);

        var chunks = ChunkLayout.ForTensors(model.NamedParameters, model.ParameterCount, join.ChunkFloats);
        await using var exchange = client.OpenExchange(chunks, cancel, Math.Max(1, settings.PushLanes));
        exchange.TimeSoFar = _clock.Snapshot;
        using var heartbeats = new CancellationTokenSource();
        var heartbeat = HeartbeatLoopAsync(client, join.WorkerId, heartbeats.Token);
        // NOTE: in sync mode a worker asks for version t+1 as soon as the forward pass of step t is
        // done. The server sends each chunk of it as soon as every worker's gradient for that chunk
        // is in, straight into the weights (this worker has pushed that chunk, so backward no longer
        // needs it), and the forward pass of step t+1 waits, layer by layer, only for the chunks it
        // is about to use: the pull overlaps backward and the next forward.
        bool sync = settings.Mode == "sync";
        var fullPass = EmulatedPass.For(settings, settings.Batch);
        EmulatedPass PassFor(int count) => count == settings.Batch ? fullPass : EmulatedPass.For(settings, count);
        Func<int, Action<int, int>?, Action<float>, Action<int>, float> compute = emulated
            ? (count, weightsNeeded, lossKnown, readyFrom) => PassFor(count).Run(chunks, weightsNeeded, lossKnown, readyFrom)
            : trainer.ComputeGradient;
        long step = 0;
        long steadyFrom = SteadyFromStep(settings, join.WorkerCount);
        // A resumed run goes on with the epoch after its checkpoint's: the data order and dropout
        // masks of an epoch depend on the seed, the epoch and the shard alone.
        int epoch = settings.StartEpoch;
        batches.StartEpoch(epoch);
        model.SeedEpoch(settings.Seed, epoch, join.ShardIndex);
        try
        {
            long t0 = Stopwatch.GetTimestamp();
            var pulled = await exchange.PullAsync(join.WorkerId, 0, model.Parameters, cancel).ConfigureAwait(false);
            _clock.AddPull(TimeSplitClock.Since(t0), pulled.WaitedMs);
            if (join.Replacement)
            {
                epoch = TakeOverShard(batches, trainer, model, join, pulled.Version, sync);
            }
            IncomingWeights? arriving = null;
            while (!pulled.Finished && !cancel.IsCancellationRequested)
            {
                trainer.Images.SetBatchSize(settings.Batch);
                int count = batches.Next(trainer.Images.Span, trainer.Labels);
                if (count == 0)
                {
                    batches.StartEpoch(++epoch);
                    model.SeedEpoch(settings.Seed, epoch, join.ShardIndex);
                    count = batches.Next(trainer.Images.Span, trainer.Labels);
                }

                long t1 = Stopwatch.GetTimestamp();
                double weightsMs = 0;
                var current = arriving;
                long baseVersion = pulled.Version;
                Action<int, int>? weightsNeeded = current is null ? null : (offset, length) => weightsMs += current.WaitFor(offset, length);
                Action<float> forwardDone = _ =>
                {
                    if (!sync)
                    {
                        return;
                    }
                    if (current is not null)
                    {
                        // Every chunk is in once forward has used them all; the pull tells whether the run is over.
                        long w = Stopwatch.GetTimestamp();
                        pulled = current.Reading.GetAwaiter().GetResult();
                        weightsMs += TimeSplitClock.Since(w);
                        baseVersion = pulled.Version;
                        if (pulled.Finished)
                        {
                            throw new RunFinishedException();
                        }
                    }
                    arriving = exchange.BeginPullAsync(join.WorkerId, baseVersion + 1, model.Parameters, cancel).GetAwaiter().GetResult();
                };
                double pushMs;
                try
                {
                    pushMs = await ComputeAndPushAsync(exchange, join, step, () => baseVersion, gradientBytes, count, weightsNeeded, forwardDone, compute, cancel).ConfigureAwait(false);
                }
                catch (RunFinishedException)
                {
                    break;
                }
                double stepMs = TimeSplitClock.Since(t1);
                double waitedMs = 0;
                if (!sync)
                {
                    long t2 = Stopwatch.GetTimestamp();
                    pulled = await exchange.PullAsync(join.WorkerId, 0, model.Parameters, cancel).ConfigureAwait(false);
                    weightsMs = TimeSplitClock.Since(t2);
                    waitedMs = pulled.WaitedMs;
                }
                else if (current is not null)
                {
                    waitedMs = pulled.WaitedMs;
                }
                _clock.Add(stepMs - pushMs - (sync ? weightsMs : 0), pushMs, Math.Max(0, weightsMs - waitedMs), Math.Min(weightsMs, waitedMs), count);
                step++;
                if (step == steadyFrom)
                {
                    _clock.MarkSteadyStart();
                }
            }
        }
        finally
        {
            await heartbeats.CancelAsync().ConfigureAwait(false);
            await heartbeat.ConfigureAwait(false);
            await SendHeartbeatAsync(client, join.WorkerId).ConfigureAwait(false);
            await LeaveAsync(client, join.WorkerId).ConfigureAwait(false);
        }
        var split = _clock.Snapshot();
        logger.LogInformation("worker {Id} done: {Steps} steps, compute {Compute:F0} ms, push {Push:F0} ms, pull {Pull:F0} ms, waiting {Wait:F0} ms",
            join.WorkerId, split.Steps, split.ComputeMs, split.PushMs, split.PullMs, split.WaitMs);
        return 0;
    }

    /// <summary>
    /// The worker's own step from which its time split counts as steady: half of its share of the
    /// run's samples in steps of its batch (in sync mode every worker makes every step of N
    /// batches; otherwise each makes about 1/N of the pushes), as the server times throughput over
    /// the second half of its updates. With backup workers, some of whose gradients are dropped,
    /// it starts a little early.
    /// </summary>
    public static long SteadyFromStep(TrainingSettings settings, int workerCount) =>
        Math.Max(1, settings.TotalSamples / ((long)Math.Max(1, settings.Batch) * Math.Max(1, workerCount)) / 2);

    private async Task SlowDownAsync(CancellationToken cancel)
    {
        if (_options.SlowdownMs > 0)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(_options.SlowdownMs), cancel).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Runs <paramref name="compute"/> (forward and backward), sending each gradient chunk as soon
    /// as backward has made it final (the last layers first), so that most of the push overlaps the
    /// first layers' backward. Returns the time spent waiting for the push after the compute ended.
    /// </summary>
    private async Task<double> ComputeAndPushAsync(ExchangeSession exchange, JoinReply join, long step, Func<long> baseVersion, ReadOnlyMemory<byte> gradientBytes, int count,
        Action<int, int>? weightsNeeded, Action<float> forwardDone, Func<int, Action<int, int>?, Action<float>, Action<int>, float> compute, CancellationToken cancel)
    {
        var chunks = exchange.Chunks;
        int next = chunks.Count - 1;
        float batchLoss = 0f;
        long version = -1;
        var ready = System.Threading.Channels.Channel.CreateUnbounded<int>(new System.Threading.Channels.UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var sender = Task.Run(async () =>
        {
            await foreach (int index in ready.Reader.ReadAllAsync(cancel).ConfigureAwait(false))
            {
                await exchange.PushChunkAsync(join.WorkerId, step, version, gradientBytes, index, first: index == chunks.Count - 1, batchLoss, count, cancel).ConfigureAwait(false);
            }
            await exchange.PushSentAsync().ConfigureAwait(false);
        }, cancel);
        try
        {
            compute(count, weightsNeeded, loss =>
            {
                batchLoss = loss;
                forwardDone(loss);
                // The version the gradient is computed from is known once forward has all of it.
                version = baseVersion();
            }, from =>
            {
                while (next >= 0 && chunks[next].Offset >= from)
                {
                    ready.Writer.TryWrite(next--);
                }
            });
            while (next >= 0)
            {
                ready.Writer.TryWrite(next--);
            }
            await SlowDownAsync(cancel).ConfigureAwait(false);
            long t = Stopwatch.GetTimestamp();
            ready.Writer.Complete();
            await sender.ConfigureAwait(false);
            return TimeSplitClock.Since(t);
        }
        finally
        {
            ready.Writer.TryComplete();
        }
    }

    private JoinRequest MakeJoinRequest()
    {
        var request = new JoinRequest { WorkerName = _options.Name };
        if (_joinedAs is int previous)
        {
            request.PreviousWorkerId = previous;
        }
        if (_options.Rank is int rank)
        {
            request.Rank = rank;
        }
        return request;
    }

    private async Task<JoinReply?> JoinWithRetryAsync(ParameterClient client, CancellationToken cancel)
    {
        var deadline = Stopwatch.StartNew();
        var delay = TimeSpan.FromMilliseconds(250);
        while (true)
        {
            try
            {
                return await client.Client.JoinAsync(MakeJoinRequest(), cancellationToken: cancel).ConfigureAwait(false);
            }
            catch (RpcException e) when (ClusterTls.HandshakeRefusal(e.Status.DebugException) is AuthenticationException refused)
            {
                // NOTE: no retry: the same certificate would be refused again.
                logger.LogError("the parameter server at {Server} is not trusted over TLS ({Reason}): give --tls-ca with the certificate of the authority that signed its certificate, or its own", _options.Server, refused.Message.TrimEnd('.'));
                return null;
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.ResourceExhausted)
            {
                // NOTE: a full cluster may yet take this worker: in the place of one that died, once
                // the server has noticed (--worker-timeout), as when a crashed worker is restarted.
                bool full = e.StatusCode == StatusCode.ResourceExhausted;
                string problem = full ? "has no place for a worker"
                    : SpeaksTlsToPlainHttp(e) ? "does not answer HTTP/2 without TLS (a server started with --tls-cert is reached at https://)"
                    : "cannot be reached";
                if (deadline.Elapsed.TotalSeconds + delay.TotalSeconds > _options.ConnectTimeoutSeconds)
                {
                    logger.LogError("the parameter server at {Server} {Problem} after {Seconds:F0} s: giving up", _options.Server, problem, deadline.Elapsed.TotalSeconds);
                    return null;
                }
                logger.LogWarning("the parameter server at {Server} {Problem} ({Reason}); retrying in {Delay:F1} s", _options.Server, problem, e.Status.Detail, delay.TotalSeconds);
                await Task.Delay(delay, cancel).ConfigureAwait(false);
                delay = TimeSpan.FromMilliseconds(Math.Min(5000, delay.TotalMilliseconds * 2));
            }
        }
    }

    private static async Task LeaveAsync(ParameterClient client, int worker)
    {
        try
        {
            await client.Client.LeaveAsync(new LeaveRequest { WorkerId = worker }, deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: CancellationToken.None).ConfigureAwait(false);
        }
        catch (RpcException)
        {
            // The server may already be gone at the end of a run.
        }
    }

    /// <summary>
    /// The data the server trains on, as this machine holds it (<c>--data</c>, else where the
    /// server reads it), or null, said in one line, when it cannot be read or is not the server's.
    /// </summary>
    private FashionMnist? LoadServersData(TrainingSettings settings)
    {
        string? path = _options.Data ?? (string.IsNullOrEmpty(settings.Data) ? null : settings.Data);
        const string Remedy = "give this worker --data DIR where this machine keeps the server's files";
        FashionMnist data;
        try
        {
            data = FashionMnist.Load(path);
        }
        catch (DataFormatException e)
        {
            logger.LogError("cannot read the server's data here: {Message} The server trains on {Source}: {Remedy}", e.Message, settings.DataSource, Remedy);
            return null;
        }
        if (settings.DataFingerprint.Length > 0 && data.Fingerprint != settings.DataFingerprint)
        {
            logger.LogError("this machine's data is not the server's: {Mine} (fingerprint {MyPrint}) against the server's {Theirs} ({TheirPrint}); {Remedy}",
                data.Source, data.Fingerprint, settings.DataSource, settings.DataFingerprint, Remedy);
            return null;
        }
        return data;
    }

    /// <summary>Whether an http:// call failed because the other end broke off the HTTP/2 handshake, as a TLS server does.</summary>
    private bool SpeaksTlsToPlainHttp(RpcException e) =>
        _options.Server.StartsWith("http://", StringComparison.OrdinalIgnoreCase)
        && ClusterTls.Cause<HttpRequestException>(e.Status.DebugException, h => h.HttpRequestError == HttpRequestError.InvalidResponse) is not null;

    private async Task HeartbeatLoopAsync(ParameterClient client, int worker, CancellationToken cancel)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(_options.HeartbeatSeconds));
        try
        {
            while (await timer.WaitForNextTickAsync(cancel).ConfigureAwait(false))
            {
                await SendHeartbeatAsync(client, worker).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task SendHeartbeatAsync(ParameterClient client, int worker)
    {
        try
        {
            await client.Client.HeartbeatAsync(new HeartbeatRequest { WorkerId = worker, Time = _clock.Snapshot(), SteadyTime = _clock.SteadySnapshot() }, deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: CancellationToken.None).ConfigureAwait(false);
        }
        catch (RpcException)
        {
            // A missed heartbeat is not fatal; the next one carries the totals.
        }
    }
}
