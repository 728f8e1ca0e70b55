using Cluster.Data;
using Cluster.Models;
using Cluster.Optim;
using Cluster.ParameterServer.Rules;
using Cluster.Training;

namespace Cluster.ParameterServer.Tests;

/// <summary>
/// A parameter store and rule driven by worker loops on threads of this process: the rules'
/// real concurrency without the wire, for tests that need many steps quickly.
/// </summary>
internal sealed class InProcessCluster
{
    private static readonly Lazy<FashionMnist> EmbeddedData = new(() => FashionMnist.LoadEmbedded());

    public InProcessCluster(string preset, string mode, int workers, int backupWorkers, OptimizerOptions optimizer, ulong seed = 5)
    {
        Spec = ModelPresets.Resolve(preset);
        var initial = new Sequential(Spec);
        initial.Initialize(seed);
        Layout = initial.NamedParameters;
        Store = new ParameterStore(initial.Parameters, Optimizer.Create(optimizer, initial.NamedParameters));
        Pool = new GradientPool(Store.Size);
        Recorder = new RunRecorder();
        Rule = ConsistencyRule.Create(mode, workers, backupWorkers, Store, Pool, Recorder);
        Workers = workers + backupWorkers;
    }

    public static FashionMnist Data => EmbeddedData.Value;

    public ModelSpec Spec { get; }

    public IReadOnlyList<NamedParameter> Layout { get; }

    public ParameterStore Store { get; }

    public GradientPool Pool { get; }

    public RunRecorder Recorder { get; }

    public ConsistencyRule Rule { get; }

    public int Workers { get; }

    public float[] Weights()
    {
        var w = new float[Store.Size];
        Store.CopyWeights(w);
        return w;
    }

    /// <summary>
    /// Runs every worker as a loop on its own thread (pull, compute, push) until
    /// <paramref name="totalSamples"/> samples have been applied. <paramref name="compute"/> fills
    /// the model's gradient for the worker's next batch and returns (loss, samples).
    /// </summary>
    public async Task RunAsync(long totalSamples, Func<int, Sequential, Trainer, BatchIterator, (float Loss, int Samples)> compute, TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        // NOTE: each worker loop blocks its own thread on a pull whose wake-up runs on the thread
        // pool. On two cores the pool starts with two threads and, when they are taken (by other
        // work of this test process), adds one only every half second or so: steps stalled for
        // 0.1–0.6 s, and a whole run once until its timeout. Worker processes have no such coupling.
        ThreadPool.GetMinThreads(out int workerThreads, out int ioThreads);
        ThreadPool.SetMinThreads(Math.Max(workerThreads, 16), Math.Max(ioThreads, 16));
        Rule.Applied += update =>
        {
            if (Recorder.Samples >= totalSamples)
            {
                Rule.Finish();
            }
        };
        // NOTE: one dedicated thread per worker, as separate processes would have: on the thread
        // pool, loops that block (a straggler's sleep) would starve the others of threads.
        var tasks = Enumerable.Range(0, Workers).Select(worker => Task.Factory.StartNew(() => WorkerLoop(worker, compute, cancel.Token),
            cancel.Token, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
        await Task.WhenAll(tasks);
    }

    private void WorkerLoop(int worker, Func<int, Sequential, Trainer, BatchIterator, (float Loss, int Samples)> compute, CancellationToken cancel)
    {
        {
            var model = new Sequential(Spec);
            var trainer = new Trainer(model, Optimizer.Create(new OptimizerOptions { Name = "sgd" }, model.NamedParameters), 64);
            var batches = new BatchIterator(Data.Train, 64, 11, shuffle: true, worker, Workers);
            int epoch = 0;
            batches.StartEpoch(epoch);
            bool sync = Rule.Name == "sync";
            long minVersion = 0, step = 0;
            while (true)
            {
                // Blocking here keeps the whole loop on this worker's own thread.
                var snapshot = Rule.AcquireForPullAsync(worker, minVersion, cancel).GetAwaiter().GetResult();
                long version = snapshot.Version;
                System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(snapshot.Bytes).CopyTo(model.Parameters);
                snapshot.Release();
                if (Rule.Finished)
                {
                    return;
                }
                if (batches.SampleCount == 0)
                {
                    return;
                }
                var (loss, samples) = compute(worker, model, trainer, batches);
                if (samples == 0)
                {
                    batches.StartEpoch(++epoch);
                    (loss, samples) = compute(worker, model, trainer, batches);
                }
                var gradient = Pool.Rent();
                model.Gradients.CopyTo(gradient, 0);
                Rule.Submit(new Gradient(worker, step++, version, gradient, loss, samples));
                minVersion = sync ? version + 1 : 0;
            }
        }
    }

    /// <summary>The real forward/backward on the worker's next batch.</summary>
    public static (float Loss, int Samples) RealCompute(int worker, Sequential model, Trainer trainer, BatchIterator batches)
    {
        trainer.Images.SetBatchSize(64);
        int count = batches.Next(trainer.Images.Span, trainer.Labels);
        return count == 0 ? (0f, 0) : (trainer.ComputeGradient(count), count);
    }
}
