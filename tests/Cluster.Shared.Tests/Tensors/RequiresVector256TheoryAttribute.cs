using System.Runtime.Intrinsics;

namespace Cluster.Tests.Tensors;

/// <summary>A theory that is skipped on CPUs without hardware Vector256 (AVX2), where its code path does not run.</summary>
public sealed class RequiresVector256TheoryAttribute : TheoryAttribute
{
    public RequiresVector256TheoryAttribute()
    {
        if (!Vector256.IsHardwareAccelerated)
        {
            Skip = "Vector256 is not hardware accelerated on this CPU";
        }
    }
}
