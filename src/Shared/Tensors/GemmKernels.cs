using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Cluster.Tensors;

/// <summary>Which micro-kernel the GEMM uses; <see cref="Auto"/> picks the widest the CPU runs natively.</summary>
public enum GemmKernel
{
    /// <summary>Vector512 where the CPU accelerates it, else Vector256, else scalar.</summary>
    Auto,

    /// <summary>8×32 tile of Vector512 FMAs (AVX-512).</summary>
    Vector512,

    /// <summary>6×16 tile of Vector256 FMAs (AVX2/FMA).</summary>
    Vector256,

    /// <summary>4×4 tile in plain scalar code, for any CPU.</summary>
    Scalar,
}

/// <summary>
/// Register-tiled micro-kernels: C[MR×NR] (+)= Apanel[kc×MR]ᵀ · Bpanel[kc×NR], where both panels
/// were packed contiguous by <see cref="GemmPacking"/>. The accumulators stay in registers for the
/// whole kc loop; this inner loop is where nearly all of the engine's FLOPs are spent.
/// </summary>
internal static unsafe class GemmKernels
{
    /// <summary>The kernel <see cref="GemmKernel.Auto"/> resolves to on this CPU.</summary>
    public static GemmKernel Best { get; } =
        Vector512.IsHardwareAccelerated ? GemmKernel.Vector512
        : Vector256.IsHardwareAccelerated ? GemmKernel.Vector256
        : GemmKernel.Scalar;

    public static GemmKernel Resolve(GemmKernel kernel) => kernel == GemmKernel.Auto ? Best : kernel;

    /// <summary>Rows of the register tile.</summary>
    public static int Mr(GemmKernel kernel) => kernel switch
    {
        GemmKernel.Vector512 => 8,
        GemmKernel.Vector256 => 6,
        _ => 4,
    };

    /// <summary>Columns of the register tile.</summary>
    public static int Nr(GemmKernel kernel) => kernel switch
    {
        GemmKernel.Vector512 => 32,
        GemmKernel.Vector256 => 16,
        _ => 4,
    };

    public static void Run(GemmKernel kernel, int kc, float* a, float* b, float* c, int ldc, bool accumulate)
    {
        switch (kernel)
        {
            case GemmKernel.Vector512:
                Kernel8x32(kc, a, b, c, ldc, accumulate);
                break;
            case GemmKernel.Vector256:
                Kernel6x16(kc, a, b, c, ldc, accumulate);
                break;
            default:
                Kernel4x4(kc, a, b, c, ldc, accumulate);
                break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Fma256(Vector256<float> a, Vector256<float> b, Vector256<float> c) =>
        Vector256.FusedMultiplyAdd(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Fma512(Vector512<float> a, Vector512<float> b, Vector512<float> c) =>
        Vector512.FusedMultiplyAdd(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel6x16(int kc, float* a, float* b, float* c, int ldc, bool accumulate)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        if (Sse.IsSupported)
        {
            // Bring the C tile toward L1 while the products accumulate; it is needed at the end.
            for (int r = 0; r < 6; r++)
            {
                Sse.Prefetch0(c + r * ldc);
                Sse.Prefetch0(c + r * ldc + 15);
            }
        }
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var a0 = Vector256.Create(a[0]);
            c00 = Fma256(a0, b0, c00);
            c01 = Fma256(a0, b1, c01);
            var a1 = Vector256.Create(a[1]);
            c10 = Fma256(a1, b0, c10);
            c11 = Fma256(a1, b1, c11);
            var a2 = Vector256.Create(a[2]);
            c20 = Fma256(a2, b0, c20);
            c21 = Fma256(a2, b1, c21);
            var a3 = Vector256.Create(a[3]);
            c30 = Fma256(a3, b0, c30);
            c31 = Fma256(a3, b1, c31);
            var a4 = Vector256.Create(a[4]);
            c40 = Fma256(a4, b0, c40);
            c41 = Fma256(a4, b1, c41);
            var a5 = Vector256.Create(a[5]);
            c50 = Fma256(a5, b0, c50);
            c51 = Fma256(a5, b1, c51);
            a += 6;
            b += 16;
        }
        Store256(c, c00, c01, accumulate);
        Store256(c + ldc, c10, c11, accumulate);
        Store256(c + 2 * ldc, c20, c21, accumulate);
        Store256(c + 3 * ldc, c30, c31, accumulate);
        Store256(c + 4 * ldc, c40, c41, accumulate);
        Store256(c + 5 * ldc, c50, c51, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store256(float* row, Vector256<float> lo, Vector256<float> hi, bool accumulate)
    {
        if (accumulate)
        {
            lo += Vector256.Load(row);
            hi += Vector256.Load(row + 8);
        }
        Vector256.Store(lo, row);
        Vector256.Store(hi, row + 8);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel8x32(int kc, float* a, float* b, float* c, int ldc, bool accumulate)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        Vector512<float> c40 = default, c41 = default, c50 = default, c51 = default, c60 = default, c61 = default, c70 = default, c71 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var a0 = Vector512.Create(a[0]);
            c00 = Fma512(a0, b0, c00);
            c01 = Fma512(a0, b1, c01);
            var a1 = Vector512.Create(a[1]);
            c10 = Fma512(a1, b0, c10);
            c11 = Fma512(a1, b1, c11);
            var a2 = Vector512.Create(a[2]);
            c20 = Fma512(a2, b0, c20);
            c21 = Fma512(a2, b1, c21);
            var a3 = Vector512.Create(a[3]);
            c30 = Fma512(a3, b0, c30);
            c31 = Fma512(a3, b1, c31);
            var a4 = Vector512.Create(a[4]);
            c40 = Fma512(a4, b0, c40);
            c41 = Fma512(a4, b1, c41);
            var a5 = Vector512.Create(a[5]);
            c50 = Fma512(a5, b0, c50);
            c51 = Fma512(a5, b1, c51);
            var a6 = Vector512.Create(a[6]);
            c60 = Fma512(a6, b0, c60);
            c61 = Fma512(a6, b1, c61);
            var a7 = Vector512.Create(a[7]);
            c70 = Fma512(a7, b0, c70);
            c71 = Fma512(a7, b1, c71);
            a += 8;
            b += 32;
        }
        Store512(c, c00, c01, accumulate);
        Store512(c + ldc, c10, c11, accumulate);
        Store512(c + 2 * ldc, c20, c21, accumulate);
        Store512(c + 3 * ldc, c30, c31, accumulate);
        Store512(c + 4 * ldc, c40, c41, accumulate);
        Store512(c + 5 * ldc, c50, c51, accumulate);
        Store512(c + 6 * ldc, c60, c61, accumulate);
        Store512(c + 7 * ldc, c70, c71, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store512(float* row, Vector512<float> lo, Vector512<float> hi, bool accumulate)
    {
        if (accumulate)
        {
            lo += Vector512.Load(row);
            hi += Vector512.Load(row + 16);
        }
        Vector512.Store(lo, row);
        Vector512.Store(hi, row + 16);
    }

    private static void Kernel4x4(int kc, float* a, float* b, float* c, int ldc, bool accumulate)
    {
        float* acc = stackalloc float[16];
        for (int i = 0; i < 16; i++)
        {
            acc[i] = 0f;
        }
        for (int p = 0; p < kc; p++)
        {
            for (int r = 0; r < 4; r++)
            {
                float ar = a[r];
                for (int j = 0; j < 4; j++)
                {
                    acc[r * 4 + j] = MathF.FusedMultiplyAdd(ar, b[j], acc[r * 4 + j]);
                }
            }
            a += 4;
            b += 4;
        }
        for (int r = 0; r < 4; r++)
        {
            for (int j = 0; j < 4; j++)
            {
                c[r * ldc + j] = accumulate ? c[r * ldc + j] + acc[r * 4 + j] : acc[r * 4 + j];
            }
        }
    }
}
