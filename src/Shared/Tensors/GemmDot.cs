using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Cluster.Tensors;

/// <summary>
/// C (+)= A·Bᵀ computed as blocked dot products, for the shapes where packing does not pay:
/// a long inner dimension k and a small C, as in every weight gradient (dW = dY·Xᵀ summed over a
/// whole batch of positions). Both A's and B's rows are contiguous along k, so they are read in
/// place: a 4×3 block of C keeps twelve Vector256 accumulators in registers while four rows of A
/// and three rows of B stream through, and k is cut into chunks so that the operand re-read for
/// every block stays in L2.
/// </summary>
internal static unsafe class GemmDot
{
    private const int BlockRows = 4;
    private const int BlockCols = 3;

    /// <summary>Whether the dot-product path should handle an A·Bᵀ product of this shape.</summary>
    public static bool Suits(int m, int n, int k) =>
        Vector256.IsHardwareAccelerated && k >= 256 && k >= 4 * Math.Min(m, n);

    private sealed class State
    {
        public float* A, B, C;
        public int Lda, Ldb, Ldc, M, N, K;
        public bool Accumulate, Transposed;
        public int Parts;
        public readonly Action<int> Body;

        public State() => Body = RunPart;

        private void RunPart(int part)
        {
            int colBlocks = (N + BlockCols - 1) / BlockCols;
            (int start, int end) = ThreadTeam.Partition(colBlocks, Parts, part);
            Range(this, start * BlockCols, Math.Min(N, end * BlockCols));
        }
    }

    [ThreadStatic]
    private static State? t_single;

    /// <summary>
    /// C[m×n] (+)= A[m×k]·B[n×k]ᵀ with row strides lda, ldb, ldc.
    /// </summary>
    public static void Multiply(float* a, int lda, float* b, int ldb, int m, int n, int k, float* c, int ldc, bool accumulate, ThreadTeam team)
    {
        // Iterate the larger of m and n in the outer loop: the smaller side's k-chunk is what
        // every block re-reads, so it is the one kept in L2. For m > n, compute Cᵀ = B·Aᵀ.
        bool transposed = m > n;
        var state = (team.EffectiveSize > 1 ? team.GemmDotState as State : t_single) ?? new State();
        if (team.EffectiveSize > 1)
        {
            team.GemmDotState = state;
        }
        else
        {
            t_single = state;
        }
        state.A = transposed ? b : a;
        state.Lda = transposed ? ldb : lda;
        state.B = transposed ? a : b;
        state.Ldb = transposed ? lda : ldb;
        state.M = transposed ? n : m;
        state.N = transposed ? m : n;
        state.K = k;
        state.C = c;
        state.Ldc = ldc;
        state.Accumulate = accumulate;
        state.Transposed = transposed;
        int colBlocks = (state.N + BlockCols - 1) / BlockCols;
        state.Parts = Math.Min(team.EffectiveSize, colBlocks);
        if (state.Parts <= 1)
        {
            Range(state, 0, state.N);
        }
        else
        {
            team.Run(state.Body);
        }
    }

    private static void Range(State s, int j0, int j1)
    {
        // The chunk of A (M rows) re-read by every column block should fit in about half of L2.
        int chunk = Math.Clamp(64 * 1024 / Math.Max(1, s.M) / 8 * 8, 256, 8192);
        for (int p0 = 0; p0 < s.K; p0 += chunk)
        {
            int kc = Math.Min(chunk, s.K - p0);
            bool add = s.Accumulate || p0 > 0;
            for (int j = j0; j < j1; j += BlockCols)
            {
                int cols = Math.Min(BlockCols, j1 - j);
                for (int i = 0; i < s.M; i += BlockRows)
                {
                    int rows = Math.Min(BlockRows, s.M - i);
                    float* a = s.A + (long)i * s.Lda + p0;
                    float* b = s.B + (long)j * s.Ldb + p0;
                    if (rows == BlockRows && cols == BlockCols)
                    {
                        Block4x3(s, a, b, kc, i, j, add);
                    }
                    else
                    {
                        for (int r = 0; r < rows; r++)
                        {
                            for (int q = 0; q < cols; q++)
                            {
                                float dot = TensorPrimitives.Dot(new ReadOnlySpan<float>(a + (long)r * s.Lda, kc), new ReadOnlySpan<float>(b + (long)q * s.Ldb, kc));
                                Store(s, i + r, j + q, dot, add);
                            }
                        }
                    }
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(State s, int i, int j, float value, bool add)
    {
        float* target = s.Transposed ? s.C + (long)j * s.Ldc + i : s.C + (long)i * s.Ldc + j;
        *target = add ? *target + value : value;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block4x3(State s, float* a, float* b, int kc, int i, int j, bool add)
    {
        float* a0 = a, a1 = a + s.Lda, a2 = a + 2L * s.Lda, a3 = a + 3L * s.Lda;
        float* b0 = b, b1 = b + s.Ldb, b2 = b + 2L * s.Ldb;
        Vector256<float> c00 = default, c01 = default, c02 = default, c10 = default, c11 = default, c12 = default;
        Vector256<float> c20 = default, c21 = default, c22 = default, c30 = default, c31 = default, c32 = default;
        int p = 0;
        for (; p <= kc - 8; p += 8)
        {
            var v0 = Vector256.Load(b0 + p);
            var v1 = Vector256.Load(b1 + p);
            var v2 = Vector256.Load(b2 + p);
            var u = Vector256.Load(a0 + p);
            c00 = Vector256.FusedMultiplyAdd(u, v0, c00);
            c01 = Vector256.FusedMultiplyAdd(u, v1, c01);
            c02 = Vector256.FusedMultiplyAdd(u, v2, c02);
            u = Vector256.Load(a1 + p);
            c10 = Vector256.FusedMultiplyAdd(u, v0, c10);
            c11 = Vector256.FusedMultiplyAdd(u, v1, c11);
            c12 = Vector256.FusedMultiplyAdd(u, v2, c12);
            u = Vector256.Load(a2 + p);
            c20 = Vector256.FusedMultiplyAdd(u, v0, c20);
            c21 = Vector256.FusedMultiplyAdd(u, v1, c21);
            c22 = Vector256.FusedMultiplyAdd(u, v2, c22);
            u = Vector256.Load(a3 + p);
            c30 = Vector256.FusedMultiplyAdd(u, v0, c30);
            c31 = Vector256.FusedMultiplyAdd(u, v1, c31);
            c32 = Vector256.FusedMultiplyAdd(u, v2, c32);
        }
        float* sums = stackalloc float[12];
        sums[0] = Vector256.Sum(c00);
        sums[1] = Vector256.Sum(c01);
        sums[2] = Vector256.Sum(c02);
        sums[3] = Vector256.Sum(c10);
        sums[4] = Vector256.Sum(c11);
        sums[5] = Vector256.Sum(c12);
        sums[6] = Vector256.Sum(c20);
        sums[7] = Vector256.Sum(c21);
        sums[8] = Vector256.Sum(c22);
        sums[9] = Vector256.Sum(c30);
        sums[10] = Vector256.Sum(c31);
        sums[11] = Vector256.Sum(c32);
        for (; p < kc; p++)
        {
            for (int r = 0; r < 4; r++)
            {
                float av = a[r * (long)s.Lda + p];
                sums[r * 3] += av * b0[p];
                sums[r * 3 + 1] += av * b1[p];
                sums[r * 3 + 2] += av * b2[p];
            }
        }
        for (int r = 0; r < 4; r++)
        {
            for (int q = 0; q < 3; q++)
            {
                Store(s, i + r, j + q, sums[r * 3 + q], add);
            }
        }
    }
}
