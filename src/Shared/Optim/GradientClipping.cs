namespace Cluster.Optim;

/// <summary>Gradient clipping, as torch.nn.utils.clip_grad_norm_ does it.</summary>
public static class GradientClipping
{
    /// <summary>
    /// Clips <paramref name="gradients"/> in place by their global L2 norm ‖g‖ = √(Σ gᵢ²): when
    /// ‖g‖ &gt; <paramref name="maxNorm"/>, every gradient is multiplied by maxNorm / ‖g‖, so the
    /// clipped norm is maxNorm and the direction is kept; at or under the max nothing changes.
    /// PyTorch divides by ‖g‖ + 1e-6 instead, which differs by under 1e-6 relative. A NaN norm is
    /// returned with the gradients left as they are; check the result to skip such a step.
    /// </summary>
    /// <param name="gradients">The flat gradient buffer, modified in place.</param>
    /// <param name="maxNorm">The largest norm allowed; must be &gt; 0.</param>
    /// <returns>The norm before clipping.</returns>
    public static float ClipByGlobalNorm(Span<float> gradients, float maxNorm)
    {
        if (!(maxNorm > 0f))
        {
            throw new ArgumentOutOfRangeException(nameof(maxNorm), $"max gradient norm {maxNorm} must be > 0");
        }
        float norm = TensorPrimitives.Norm(gradients);
        if (norm > maxNorm)
        {
            TensorPrimitives.Multiply(gradients, maxNorm / norm, gradients);
        }
        return norm;
    }
}
