using System.Diagnostics;
using Cluster.Tensors;

namespace Cluster.Benchmarks;

/// <summary>
/// A fast Stopwatch measurement of the same cases (medians of many runs), for iterating on the
/// kernels and for printing figures beside libtorch's reference in one session:
/// <c>dotnet run -c Release --project bench/Cluster.Benchmarks -- quick</c>.
/// BenchmarkDotNet (any other arguments) gives the authoritative numbers.
/// </summary>
public static class QuickBench
{
    public static void Run()
    {
        foreach (int size in new[] { 512, 1024 })
        {
            foreach (int threads in new[] { 1, 2 })
            {
                var bench = new GemmBenchmarks { Size = size, Threads = threads };
                bench.Setup();
                double median = MedianSeconds(bench.Sgemm, size == 512 ? 40 : 12);
                Console.WriteLine($"sgemm {size}³ threads={threads}: median {median * 1e3:F2} ms, {bench.Flops / median / 1e9:F1} GFLOP/s");
                bench.Cleanup();
            }
        }
        foreach (string model in new[] { "lenet", "mlp", "resnet", "lstm", "gru" })
        {
            foreach (int threads in new[] { 1, 2 })
            {
                Step(model, threads);
            }
        }
    }

    /// <summary>The median training step of one preset at batch 64 (<c>quick step MODEL THREADS</c>).</summary>
    public static void Step(string model, int threads)
    {
        using var team = threads == 1 ? null : new ThreadTeam(threads);
        var trainer = TrainingStepBenchmarks.CreateTrainer(model, team ?? ThreadTeam.Single);
        double median = MedianSeconds(() => trainer.Step(TrainingStepBenchmarks.Batch), 60);
        Console.WriteLine($"{model} step batch {TrainingStepBenchmarks.Batch} threads={threads}: median {median * 1e3:F2} ms, {TrainingStepBenchmarks.Batch / median:F0} images/s");
    }

    /// <summary>One SGEMM size and thread count, many runs (<c>quick gemm SIZE THREADS</c>).</summary>
    public static void Gemm(int size, int threads)
    {
        var bench = new GemmBenchmarks { Size = size, Threads = threads };
        bench.Setup();
        double median = MedianSeconds(bench.Sgemm, 200);
        Console.WriteLine($"sgemm {size}³ threads={threads}: median {median * 1e3:F2} ms, {bench.Flops / median / 1e9:F1} GFLOP/s");
        bench.Cleanup();
    }

    private static double MedianSeconds(Action action, int runs)
    {
        for (int i = 0; i < 5; i++)
        {
            action();
        }
        var times = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            long start = Stopwatch.GetTimestamp();
            action();
            times[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
        Array.Sort(times);
        return times[runs / 2];
    }
}

/// <summary>Per-layer forward and backward medians of a preset, to see where a step's time goes (<c>quick layers</c>).</summary>
public static class LayerProfile
{
    public static void Run(string preset, int threads)
    {
        using var team = threads == 1 ? null : new ThreadTeam(threads);
        var trainer = TrainingStepBenchmarks.CreateTrainer(preset, team ?? ThreadTeam.Single);
        var model = trainer.Model;
        trainer.Step(TrainingStepBenchmarks.Batch);
        var fwd = new List<double>[model.Layers.Count];
        var bwd = new List<double>[model.Layers.Count];
        for (int i = 0; i < fwd.Length; i++)
        {
            fwd[i] = [];
            bwd[i] = [];
        }
        var acts = new Tensor[model.Layers.Count + 1];
        var grads = new Tensor[model.Layers.Count + 1];
        acts[0] = trainer.Images;
        for (int i = 0; i < model.Layers.Count; i++)
        {
            acts[i + 1] = Tensor.Zeros([TrainingStepBenchmarks.Batch, .. model.Layers[i].OutputShape]);
            grads[i + 1] = Tensor.Zeros([TrainingStepBenchmarks.Batch, .. model.Layers[i].OutputShape]);
        }
        for (int run = 0; run < 40; run++)
        {
            for (int i = 0; i < model.Layers.Count; i++)
            {
                long t = Stopwatch.GetTimestamp();
                model.Layers[i].Forward(acts[i], acts[i + 1], true);
                fwd[i].Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
            }
            for (int i = model.Layers.Count - 1; i >= 0; i--)
            {
                long t = Stopwatch.GetTimestamp();
                model.Layers[i].Backward(acts[i], acts[i + 1], grads[i + 1], i == 0 ? null : grads[i]);
                bwd[i].Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
            }
        }
        for (int i = 0; i < model.Layers.Count; i++)
        {
            fwd[i].Sort();
            bwd[i].Sort();
            Console.WriteLine($"{model.Layers[i].Spec,-20} forward {fwd[i][20],7:F3} ms  backward {bwd[i][20],7:F3} ms");
        }
    }
}

/// <summary>GEMM at the shapes a lenet step uses (<c>quick shapes</c>), to separate GEMM time from layer overhead.</summary>
public static class ShapeProfile
{
    public static void Run(int threads)
    {
        using var team = threads == 1 ? null : new ThreadTeam(threads);
        (string Name, bool TA, bool TB, int M, int N, int K)[] shapes =
        [
            ("conv1 fwd", false, false, 32, 43264, 9),
            ("conv1 dW", false, true, 32, 9, 43264),
            ("conv2 fwd", false, false, 64, 7744, 288),
            ("conv2 dW", false, true, 64, 288, 7744),
            ("conv2 dcols", true, false, 288, 7744, 64),
            ("fc1 fwd", false, true, 64, 128, 1600),
            ("fc1 dW", true, false, 128, 1600, 64),
            ("fc1 dx", false, false, 64, 1600, 128),
            ("lstm x·Wihᵀ", false, true, 1792, 512, 28),
            ("lstm h·Whhᵀ", false, true, 64, 512, 128),
            ("lstm dg·Whh", false, false, 64, 128, 512),
            ("lstm dWih", true, false, 512, 28, 1792),
            ("lstm dWhh", true, false, 512, 128, 1792),
            ("lstm dx", false, false, 1792, 28, 512),
            ("lstm dWihᵀ", true, false, 28, 512, 1792),
            ("lstm dxᵀ", true, true, 28, 1792, 512),
        ];
        foreach (var s in shapes)
        {
            var a = new float[s.M * s.K];
            var b = new float[s.K * s.N];
            var c = new float[s.M * s.N];
            var random = new SeededRandom(3);
            foreach (ref float v in a.AsSpan()) v = random.NextFloat();
            foreach (ref float v in b.AsSpan()) v = random.NextFloat();
            var times = new List<double>();
            for (int i = 0; i < 45; i++)
            {
                long t = Stopwatch.GetTimestamp();
                Gemm.Multiply(s.TA, s.TB, s.M, s.N, s.K, a, s.TA ? s.M : s.K, b, s.TB ? s.K : s.N, c, s.N, false, team);
                if (i >= 5) times.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
            }
            times.Sort();
            double ms = times[times.Count / 2];
            Console.WriteLine($"{s.Name,-12} {s.M}x{s.N}x{s.K}: {ms:F3} ms, {2.0 * s.M * s.N * s.K / ms / 1e6:F1} GFLOP/s");
        }
    }
}
