using Cluster.Tensors;

namespace Cluster.Tests.Tensors;

public sealed class GemmTests
{
    /// <summary>Written around and after C; must survive every product.</summary>
    private const float Sentinel = -777f;

    /// <summary>Error allowed relative to Σ|a·b| (and |C| when accumulating) for float32 sums.</summary>
    private const double Tolerance = 1e-5;

    /// <summary>Odd sizes in every position, k = 0, and the cache-block edges (Kc = 256, Mc = 144, Nc = 4096).</summary>
    private static readonly (int M, int N, int K)[] Shapes =
    [
        (1, 1, 1), (1, 5, 7), (5, 7, 17), (7, 5, 0), (17, 33, 5), (33, 17, 67), (1, 130, 33), (130, 1, 17),
        (5, 67, 130), (67, 7, 1), (67, 130, 33), (130, 67, 7), (33, 130, 67), (17, 1, 0), (150, 20, 300),
        (2, 4100, 3), (13, 40, 520),
    ];

    /// <summary>Vector512 runs in software on CPUs without AVX-512, so it gets the smaller shapes only.</summary>
    private static readonly (int M, int N, int K)[] SmallShapes =
    [
        (1, 1, 1), (1, 5, 7), (5, 7, 17), (7, 5, 0), (17, 33, 5), (33, 17, 67), (1, 67, 33), (67, 1, 17), (9, 33, 130), (17, 40, 260),
    ];

    /// <summary>
    /// Shapes big enough for the threaded driver: tall (row split), wide (column split), long k
    /// (inner split with a reduction), few rows and columns (row split fallback) and one that stays
    /// sequential although two threads are offered.
    /// </summary>
    private static readonly (int M, int N, int K)[] ParallelShapes =
    [
        (300, 40, 50), (20, 500, 60), (64, 288, 2000), (9, 9, 5000), (14, 60, 200), (10, 63, 240), (131, 67, 129),
    ];

    /// <summary>A·Bᵀ with k ≥ 256 and k ≥ 4·min(m, n): the dot-product path, transposed when m &gt; n, with edge blocks and k tails.</summary>
    private static readonly (int M, int N, int K)[] DotShapes =
    [
        (32, 9, 3000), (64, 20, 1000), (10, 50, 2000), (9, 32, 3000), (7, 5, 1001), (260, 70, 1040), (70, 260, 1043), (1, 1, 256),
    ];

    public static TheoryData<bool, bool> TransposeCases => new() { { false, false }, { false, true }, { true, false }, { true, true } };

    [Theory]
    [MemberData(nameof(TransposeCases))]
    public void Scalar_kernel_matches_a_naive_product(bool transA, bool transB) =>
        CheckShapes(Shapes, transA, transB, GemmKernel.Scalar, team: null);

    [RequiresVector256Theory]
    [MemberData(nameof(TransposeCases))]
    public void Vector256_kernel_matches_a_naive_product(bool transA, bool transB) =>
        CheckShapes(Shapes, transA, transB, GemmKernel.Vector256, team: null);

    [Theory]
    [MemberData(nameof(TransposeCases))]
    public void Vector512_kernel_matches_a_naive_product(bool transA, bool transB) =>
        CheckShapes(SmallShapes, transA, transB, GemmKernel.Vector512, team: null);

    [Theory]
    [MemberData(nameof(TransposeCases))]
    public void Auto_kernel_on_one_thread_matches_a_naive_product(bool transA, bool transB) =>
        CheckShapes(Shapes, transA, transB, GemmKernel.Auto, team: null);

    [Theory]
    [MemberData(nameof(TransposeCases))]
    public void Auto_kernel_on_two_threads_matches_a_naive_product_for_every_split(bool transA, bool transB)
    {
        using var team = new ThreadTeam(2);
        CheckShapes(ParallelShapes, transA, transB, GemmKernel.Auto, team);
    }

    [Theory]
    [MemberData(nameof(TransposeCases))]
    public void Explicit_scalar_kernel_on_two_threads_matches_a_naive_product(bool transA, bool transB)
    {
        // An explicit kernel bypasses the dot-product path, so A·Bᵀ reaches the inner split too.
        using var team = new ThreadTeam(2);
        CheckShapes(ParallelShapes, transA, transB, GemmKernel.Scalar, team);
    }

    [RequiresVector256Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Dot_product_path_matches_a_naive_product(int threads)
    {
        using var team = new ThreadTeam(threads);
        foreach (var (m, n, k) in DotShapes)
        {
            Assert.True(GemmDot.Suits(m, n, k), $"{m}×{n}×{k} should take the dot-product path");
        }
        CheckShapes(DotShapes, transA: false, transB: true, GemmKernel.Auto, team);
    }

    [Fact]
    public void Repeated_products_on_a_team_give_bit_identical_results()
    {
        using var team = new ThreadTeam(2);
        var random = new Random(5);
        float[] a = RandomArray(random, 64 * 2000);
        float[] b = RandomArray(random, 2000 * 288);
        float[] first = new float[64 * 288];
        float[] second = new float[64 * 288];

        Gemm.Multiply(false, false, 64, 288, 2000, a, 2000, b, 288, first, 288, accumulate: false, team);
        Gemm.Multiply(false, false, 64, 288, 2000, a, 2000, b, 288, second, 288, accumulate: false, team);

        Assert.Equal(first, second);
    }

    [Fact]
    public void Buffers_too_small_for_their_shape_and_stride_are_rejected()
    {
        float[] a = new float[3 * 5];
        float[] b = new float[5 * 4];

        Assert.Throws<ArgumentException>(() => Gemm.Multiply(false, false, 3, 4, 5, a, 5, b, 4, new float[(3 * 4) - 1], 4, accumulate: false));
        Assert.Throws<ArgumentException>(() => Gemm.Multiply(false, false, 3, 4, 5, a, 5, b, 4, new float[3 * 4], 5, accumulate: false));
        Assert.Throws<ArgumentException>(() => Gemm.Multiply(false, false, 3, 4, 5, a, 5, b, 4, new float[3 * 4], 3, accumulate: false));
        Assert.Throws<ArgumentException>(() => Gemm.Multiply(false, false, 3, 4, 5, a.AsSpan(1), 5, b, 4, new float[3 * 4], 4, accumulate: false));
        Assert.Throws<ArgumentException>(() => Gemm.Multiply(false, true, 3, 4, 5, a, 5, b, 4, new float[3 * 4], 4, accumulate: false));
        Assert.Throws<ArgumentException>(() => Gemm.Multiply(true, false, 3, 4, 5, a, 4, b, 4, new float[3 * 4], 4, accumulate: false));
    }

    private static void CheckShapes((int M, int N, int K)[] shapes, bool transA, bool transB, GemmKernel kernel, ThreadTeam? team)
    {
        for (int s = 0; s < shapes.Length; s++)
        {
            var (m, n, k) = shapes[s];
            // Row strides larger than needed for most shapes, exact for some.
            CheckProduct(transA, transB, m, n, k, padA: s % 4, padB: (s + 1) % 4, padC: (s + 2) % 4, kernel, team, seed: s);
        }
    }

    private static void CheckProduct(bool transA, bool transB, int m, int n, int k, int padA, int padB, int padC, GemmKernel kernel, ThreadTeam? team, int seed)
    {
        var random = new Random(seed);
        int aRows = transA ? k : m, aCols = transA ? m : k, lda = aCols + padA;
        int bRows = transB ? n : k, bCols = transB ? k : n, ldb = bCols + padB;
        int ldc = n + padC;
        float[] a = RandomArray(random, aRows == 0 ? 0 : ((aRows - 1) * lda) + aCols);
        float[] b = RandomArray(random, bRows == 0 ? 0 : ((bRows - 1) * ldb) + bCols);

        double[] product = new double[m * n];
        double[] magnitude = new double[m * n];
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double sum = 0, abs = 0;
                for (int p = 0; p < k; p++)
                {
                    double x = transA ? a[(p * lda) + i] : a[(i * lda) + p];
                    double y = transB ? b[(j * ldb) + p] : b[(p * ldb) + j];
                    sum += x * y;
                    abs += Math.Abs(x * y);
                }
                product[(i * n) + j] = sum;
                magnitude[(i * n) + j] = abs;
            }
        }

        foreach (bool accumulate in new[] { false, true })
        {
            float[] c = new float[((m - 1) * ldc) + n + 3];
            Array.Fill(c, Sentinel);
            float[] initial = RandomArray(random, m * n);
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    // NaN where C must be overwritten: any read of it would show.
                    c[(i * ldc) + j] = accumulate ? initial[(i * n) + j] : float.NaN;
                }
            }

            Gemm.Multiply(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate, team, kernel);

            string where = $"{kernel} transA={transA} transB={transB} accumulate={accumulate} m={m} n={n} k={k} lda={lda} ldb={ldb} ldc={ldc}";
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    double start = accumulate ? initial[(i * n) + j] : 0;
                    double expected = start + product[(i * n) + j];
                    double allowed = Tolerance * (magnitude[(i * n) + j] + Math.Abs(start));
                    float actual = c[(i * ldc) + j];
                    if (!(Math.Abs(actual - expected) <= allowed))
                    {
                        Assert.Fail($"{where}: C[{i},{j}] = {actual}, expected {expected} ± {allowed}");
                    }
                }
            }
            for (int index = 0; index < c.Length; index++)
            {
                bool inside = index / ldc < m && index % ldc < n;
                if (!inside && c[index] != Sentinel)
                {
                    Assert.Fail($"{where}: wrote {c[index]} at {index}, outside C");
                }
            }
        }
    }

    private static float[] RandomArray(Random random, int length)
    {
        float[] values = new float[length];
        for (int i = 0; i < length; i++)
        {
            values[i] = (float)((random.NextDouble() * 2) - 1);
        }
        return values;
    }
}
