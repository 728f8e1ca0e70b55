using System.Runtime.Intrinsics;

namespace Cluster.Tensors;

/// <summary>
/// Copies blocks of A and B into the panel layout the micro-kernels stream through: A as panels of
/// MR rows (kc × MR, column by column), B as panels of NR columns (kc × NR, row by row), with edge
/// panels zero-padded. Transposed operands are handled here, so one kernel serves all four cases.
/// </summary>
internal static unsafe class GemmPacking
{
    /// <summary>Packs rows [i0, i0+mc) × columns [p0, p0+kc) of op(A) into <paramref name="dst"/>.</summary>
    public static void PackA(float* a, int lda, bool transA, int i0, int mc, int p0, int kc, int mr, float* dst)
    {
        if (transA)
        {
            PackTransposedA(a, lda, i0, mc, p0, kc, mr, dst);
            return;
        }
        for (int ir = 0; ir < mc; ir += mr)
        {
            int rows = Math.Min(mr, mc - ir);
            float* panel = dst + (long)ir * kc;
            // op(A)(i, p) = a[i*lda + p]: each row is contiguous in p.
            for (int r = 0; r < rows; r++)
            {
                float* s = a + (long)(i0 + ir + r) * lda + p0;
                float* d = panel + r;
                for (int p = 0; p < kc; p++)
                {
                    d[p * mr] = s[p];
                }
            }
            for (int r = rows; r < mr; r++)
            {
                for (int p = 0; p < kc; p++)
                {
                    panel[p * mr + r] = 0f;
                }
            }
        }
    }

    /// <summary>
    /// op(A)(i, p) = a[p*lda + i]: row p of the block holds all <paramref name="mc"/> values
    /// contiguously. Each row is read once, front to back, and dealt out MR values per panel.
    /// </summary>
    /// <remarks>
    /// NOTE: reading panel by panel instead (MR values from each of KC rows, then the next MR)
    /// re-reads every cache line for each panel it feeds, and with a power-of-two row stride the
    /// KC lines of one panel fall into a few cache sets and evict each other: for a 512-wide A
    /// (an LSTM's gate gradients) that made the packing 7× slower than the multiplication.
    /// </remarks>
    private static void PackTransposedA(float* a, int lda, int i0, int mc, int p0, int kc, int mr, float* dst)
    {
        int full = mc / mr * mr;
        for (int p = 0; p < kc; p++)
        {
            float* s = a + (long)(p0 + p) * lda + i0;
            float* d = dst + p * mr;
            int ir = 0;
            if (mr == 8)
            {
                for (; ir < full; ir += 8)
                {
                    Vector256.Store(Vector256.Load(s + ir), d + (long)ir * kc);
                }
            }
            else
            {
                for (; ir < full; ir += mr)
                {
                    float* panel = d + (long)ir * kc;
                    for (int r = 0; r < mr; r++)
                    {
                        panel[r] = s[ir + r];
                    }
                }
            }
            if (ir < mc)
            {
                float* panel = d + (long)ir * kc;
                int r = 0;
                for (; r < mc - ir; r++)
                {
                    panel[r] = s[ir + r];
                }
                for (; r < mr; r++)
                {
                    panel[r] = 0f;
                }
            }
        }
    }

    /// <summary>Packs rows [p0, p0+kc) × columns [j0, j0+nc) of op(B) into <paramref name="dst"/>.</summary>
    public static void PackB(float* b, int ldb, bool transB, int p0, int kc, int j0, int nc, int nr, float* dst)
    {
        for (int jr = 0; jr < nc; jr += nr)
        {
            int cols = Math.Min(nr, nc - jr);
            float* panel = dst + (long)jr * kc;
            if (!transB)
            {
                // op(B)(p, j) = b[p*ldb + j]: each p gives NR contiguous values.
                float* src = b + (long)p0 * ldb + j0 + jr;
                if (cols == nr && (nr & 7) == 0)
                {
                    for (int p = 0; p < kc; p++)
                    {
                        float* s = src + (long)p * ldb;
                        float* d = panel + p * nr;
                        for (int j = 0; j < nr; j += 8)
                        {
                            Vector256.Store(Vector256.Load(s + j), d + j);
                        }
                    }
                }
                else
                {
                    for (int p = 0; p < kc; p++)
                    {
                        float* s = src + (long)p * ldb;
                        float* d = panel + p * nr;
                        int j = 0;
                        for (; j < cols; j++)
                        {
                            d[j] = s[j];
                        }
                        for (; j < nr; j++)
                        {
                            d[j] = 0f;
                        }
                    }
                }
            }
            else
            {
                // op(B)(p, j) = b[j*ldb + p]: each column j is contiguous in p.
                for (int j = 0; j < cols; j++)
                {
                    float* s = b + (long)(j0 + jr + j) * ldb + p0;
                    float* d = panel + j;
                    for (int p = 0; p < kc; p++)
                    {
                        d[p * nr] = s[p];
                    }
                }
                for (int j = cols; j < nr; j++)
                {
                    for (int p = 0; p < kc; p++)
                    {
                        panel[p * nr + j] = 0f;
                    }
                }
            }
        }
    }
}
