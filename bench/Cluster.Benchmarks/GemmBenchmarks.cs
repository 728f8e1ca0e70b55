using BenchmarkDotNet.Attributes;
using Cluster.Tensors;

namespace Cluster.Benchmarks;

/// <summary>SGEMM C = A·B on square matrices; the GFLOP/s column is 2n³ / median time.</summary>
[Config(typeof(BenchConfig))]
public class GemmBenchmarks
{
    private float[] _a = [], _b = [], _c = [];
    private ThreadTeam _team = ThreadTeam.Single;

    /// <summary>Matrix size n (n×n times n×n).</summary>
    [Params(512, 1024)]
    public int Size { get; set; }

    /// <summary>Compute threads.</summary>
    [Params(1, 2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new SeededRandom(1);
        _a = Enumerable.Range(0, Size * Size).Select(_ => random.NextFloat() - 0.5f).ToArray();
        _b = Enumerable.Range(0, Size * Size).Select(_ => random.NextFloat() - 0.5f).ToArray();
        _c = new float[Size * Size];
        _team = Threads == 1 ? ThreadTeam.Single : new ThreadTeam(Threads);
    }

    [GlobalCleanup]
    public void Cleanup() => _team.Dispose();

    [Benchmark]
    public void Sgemm() => Gemm.Multiply(false, false, Size, Size, Size, _a, Size, _b, Size, _c, Size, accumulate: false, _team);

    /// <summary>Floating-point operations of one call, for the GFLOP/s column.</summary>
    public double Flops => 2.0 * Size * Size * Size;
}
