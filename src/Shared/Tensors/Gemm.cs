using System.Runtime.InteropServices;

namespace Cluster.Tensors;

/// <summary>
/// Single-precision matrix multiply, C = op(A)·op(B) or C += op(A)·op(B), row-major, where op is
/// the identity or the transpose. A packed, cache-blocked GEMM in the BLIS style: B is packed in
/// KC×NC blocks that stay in L3/L2, A in MC×KC blocks that stay in L2, and a register-tiled
/// micro-kernel (<see cref="GemmKernels"/>) streams through both. Work is split over a
/// <see cref="ThreadTeam"/> by rows, columns or (for the tall-thin products of weight gradients)
/// by the inner dimension with a fixed-order reduction, so results are deterministic for a given
/// thread count.
/// </summary>
public static unsafe class Gemm
{
    private const int Kc = 256;
    private const int Mc = 144;
    private const int Nc = 4096;

    /// <summary>
    /// C[m×n] = op(A)[m×k] · op(B)[k×n], or C += it when <paramref name="accumulate"/>.
    /// <paramref name="lda"/>, <paramref name="ldb"/>, <paramref name="ldc"/> are the row strides of
    /// the matrices as stored (before any transpose).
    /// </summary>
    public static void Multiply(
        bool transA, bool transB, int m, int n, int k,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb,
        Span<float> c, int ldc, bool accumulate, ThreadTeam? team = null, GemmKernel kernel = GemmKernel.Auto)
    {
        if (m == 0 || n == 0)
        {
            return;
        }
        CheckExtent(a.Length, transA ? k : m, transA ? m : k, lda, "A");
        CheckExtent(b.Length, transB ? n : k, transB ? k : n, ldb, "B");
        CheckExtent(c.Length, m, n, ldc, "C");
        fixed (float* pa = a)
        fixed (float* pb = b)
        fixed (float* pc = c)
        {
            var problem = new Problem(transA, transB, m, n, k, pa, lda, pb, ldb, pc, ldc, accumulate, GemmKernels.Resolve(kernel));
            team ??= ThreadTeam.Single;
            if (!transA && transB && kernel == GemmKernel.Auto && GemmDot.Suits(m, n, k))
            {
                GemmDot.Multiply(pa, lda, pb, ldb, m, n, k, pc, ldc, accumulate, team);
            }
            else if (team.EffectiveSize == 1 || 2.0 * m * n * k < 1 << 18)
            {
                Sequential(problem);
            }
            else
            {
                Parallel(problem, team);
            }
        }
    }

    private static void CheckExtent(int length, int rows, int cols, int stride, string name)
    {
        if (rows == 0 || cols == 0)
        {
            return;
        }
        if (stride < cols || (long)(rows - 1) * stride + cols > length)
        {
            throw new ArgumentException($"matrix {name} of {rows}×{cols} with row stride {stride} does not fit in {length} floats");
        }
    }

    internal readonly struct Problem(
        bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb,
        float* c, int ldc, bool accumulate, GemmKernel kernel)
    {
        public readonly bool TransA = transA, TransB = transB, Accumulate = accumulate;
        public readonly int M = m, N = n, K = k, Lda = lda, Ldb = ldb, Ldc = ldc;
        public readonly float* A = a, B = b, C = c;
        public readonly GemmKernel Kernel = kernel;

        /// <summary>The sub-problem of rows [i0, i0+rows) and columns [j0, j0+cols) of C, over inner range [p0, p0+depth).</summary>
        public Problem Slice(int i0, int rows, int j0, int cols, int p0, int depth, float* c, int ldc, bool accumulate)
        {
            float* a = TransA ? A + (long)p0 * Lda + i0 : A + (long)i0 * Lda + p0;
            float* b = TransB ? B + (long)j0 * Ldb + p0 : B + (long)p0 * Ldb + j0;
            return new Problem(TransA, TransB, rows, cols, depth, a, Lda, b, Ldb, c, ldc, accumulate, Kernel);
        }
    }

    /// <summary>Per-thread packing buffers, allocated once per thread, 64-byte aligned.</summary>
    private sealed class Workspace
    {
        public readonly float* PackA = (float*)NativeMemory.AlignedAlloc((nuint)(Mc * Kc * sizeof(float)), 64);
        public readonly float* PackB = (float*)NativeMemory.AlignedAlloc((nuint)(Kc * Nc * sizeof(float)), 64);
        public readonly float* Tile = (float*)NativeMemory.AlignedAlloc((nuint)(8 * 32 * sizeof(float)), 64);
    }

    [ThreadStatic]
    private static Workspace? t_workspace;

    private static int BalancedBlock(int total, int maxBlock, int multiple)
    {
        int blocks = (total + maxBlock - 1) / maxBlock;
        int size = (total + blocks - 1) / blocks;
        return Math.Min(maxBlock, (size + multiple - 1) / multiple * multiple);
    }

    internal static void Sequential(in Problem p)
    {
        var ws = t_workspace ??= new Workspace();
        int mr = GemmKernels.Mr(p.Kernel), nr = GemmKernels.Nr(p.Kernel);
        if (p.K == 0)
        {
            if (!p.Accumulate)
            {
                for (int i = 0; i < p.M; i++)
                {
                    new Span<float>(p.C + (long)i * p.Ldc, p.N).Clear();
                }
            }
            return;
        }
        int kcMax = BalancedBlock(p.K, Kc, 1);
        int mcMax = BalancedBlock(p.M, Mc, mr);
        for (int jc = 0; jc < p.N; jc += Nc)
        {
            int nc = Math.Min(Nc, p.N - jc);
            for (int pc = 0; pc < p.K; pc += kcMax)
            {
                int kc = Math.Min(kcMax, p.K - pc);
                bool accumulate = p.Accumulate || pc > 0;
                GemmPacking.PackB(p.B, p.Ldb, p.TransB, pc, kc, jc, nc, nr, ws.PackB);
                for (int ic = 0; ic < p.M; ic += mcMax)
                {
                    int mc = Math.Min(mcMax, p.M - ic);
                    GemmPacking.PackA(p.A, p.Lda, p.TransA, ic, mc, pc, kc, mr, ws.PackA);
                    MacroKernel(p, ws, ic, mc, jc, nc, kc, mr, nr, accumulate);
                }
            }
        }
    }

    private static void MacroKernel(in Problem p, Workspace ws, int ic, int mc, int jc, int nc, int kc, int mr, int nr, bool accumulate)
    {
        for (int jr = 0; jr < nc; jr += nr)
        {
            int cols = Math.Min(nr, nc - jr);
            float* bPanel = ws.PackB + (long)jr * kc;
            for (int ir = 0; ir < mc; ir += mr)
            {
                int rows = Math.Min(mr, mc - ir);
                float* aPanel = ws.PackA + (long)ir * kc;
                float* c = p.C + (long)(ic + ir) * p.Ldc + jc + jr;
                if (rows == mr && cols == nr)
                {
                    GemmKernels.Run(p.Kernel, kc, aPanel, bPanel, c, p.Ldc, accumulate);
                }
                else
                {
                    // Edge tile: compute the full tile into scratch, then write the valid part.
                    GemmKernels.Run(p.Kernel, kc, aPanel, bPanel, ws.Tile, nr, false);
                    for (int r = 0; r < rows; r++)
                    {
                        float* src = ws.Tile + r * nr;
                        float* dst = c + (long)r * p.Ldc;
                        for (int j = 0; j < cols; j++)
                        {
                            dst[j] = accumulate ? dst[j] + src[j] : src[j];
                        }
                    }
                }
            }
        }
    }

    /// <summary>The state of one multi-threaded call, kept per team so that calls do not allocate.</summary>
    private sealed class ParallelState
    {
        public Problem Problem;
        public int Parts;
        public Split How;
        public float[] Partials = [];
        public readonly Action<int> Body;

        public ParallelState() => Body = RunPart;

        private void RunPart(int part)
        {
            if (part >= Parts)
            {
                return;
            }
            ref readonly var p = ref Problem;
            int mr = GemmKernels.Mr(p.Kernel), nr = GemmKernels.Nr(p.Kernel);
            switch (How)
            {
                case Split.Rows:
                {
                    (int start, int end) = Chunk(p.M, mr, part);
                    if (end > start)
                    {
                        Sequential(p.Slice(start, end - start, 0, p.N, 0, p.K, p.C + (long)start * p.Ldc, p.Ldc, p.Accumulate));
                    }
                    break;
                }
                case Split.Columns:
                {
                    (int start, int end) = Chunk(p.N, nr, part);
                    if (end > start)
                    {
                        Sequential(p.Slice(0, p.M, start, end - start, 0, p.K, p.C + start, p.Ldc, p.Accumulate));
                    }
                    break;
                }
                default:
                {
                    (int start, int end) = Chunk(p.K, 16, part);
                    if (part == 0)
                    {
                        Sequential(p.Slice(0, p.M, 0, p.N, start, end - start, p.C, p.Ldc, p.Accumulate));
                    }
                    else
                    {
                        fixed (float* partial = &Partials[(part - 1) * p.M * p.N])
                        {
                            Sequential(p.Slice(0, p.M, 0, p.N, start, end - start, partial, p.N, false));
                        }
                    }
                    break;
                }
            }
        }

        private (int Start, int End) Chunk(int total, int multiple, int part)
        {
            int per = ((total + Parts - 1) / Parts + multiple - 1) / multiple * multiple;
            int start = Math.Min(total, part * per);
            return (start, Math.Min(total, start + per));
        }
    }

    private enum Split
    {
        Rows,
        Columns,
        Inner,
    }

    private static void Parallel(in Problem p, ThreadTeam team)
    {
        int parts = team.Size;
        int mr = GemmKernels.Mr(p.Kernel), nr = GemmKernels.Nr(p.Kernel);
        Split how;
        if (p.K >= 4 * Math.Max(p.M, p.N) && p.K >= parts * 128)
        {
            // Weight gradients: small C, long inner dimension. Splitting rows or columns would
            // repack the whole of one operand per thread; splitting K packs each element once.
            how = Split.Inner;
        }
        else if (p.M >= p.N && p.M >= parts * mr * 2)
        {
            how = Split.Rows;
        }
        else if (p.N >= parts * nr * 2)
        {
            how = Split.Columns;
        }
        else if (p.M >= parts * mr)
        {
            how = Split.Rows;
        }
        else
        {
            Sequential(p);
            return;
        }
        var state = team.GemmState as ParallelState ?? new ParallelState();
        team.GemmState = state;
        state.Problem = p;
        state.Parts = parts;
        state.How = how;
        if (how == Split.Inner && state.Partials.Length < (parts - 1) * p.M * p.N)
        {
            state.Partials = new float[(parts - 1) * p.M * p.N];
        }
        team.Run(state.Body);
        if (how == Split.Inner)
        {
            // Fixed-order reduction: part 0 wrote C, parts 1.. are added in order.
            for (int part = 1; part < parts; part++)
            {
                var partial = state.Partials.AsSpan((part - 1) * p.M * p.N, p.M * p.N);
                for (int i = 0; i < p.M; i++)
                {
                    var row = new Span<float>(p.C + (long)i * p.Ldc, p.N);
                    TensorPrimitives.Add(row, partial.Slice(i * p.N, p.N), row);
                }
            }
        }
    }
}
