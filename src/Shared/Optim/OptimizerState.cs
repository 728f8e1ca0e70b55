namespace Cluster.Optim;

/// <summary>
/// A copy of an optimizer's state at one moment: what a checkpoint needs so that training resumed
/// from it takes exactly the steps the uninterrupted run would have taken.
/// </summary>
/// <param name="Optimizer">The optimizer's name (<see cref="OptimizerOptions.Name"/>).</param>
/// <param name="Steps">Steps taken (Adam's bias correction depends on it).</param>
/// <param name="Buffers">
/// Each state buffer by PyTorch's name for it (<c>momentum_buffer</c>, <c>exp_avg</c>,
/// <c>exp_avg_sq</c>, <c>square_avg</c>, <c>sum</c>), laid out as the flat parameter vector.
/// </param>
public sealed record OptimizerState(string Optimizer, long Steps, IReadOnlyDictionary<string, float[]> Buffers)
{
    /// <summary>Every buffer name an optimizer of Cluster keeps, in the order checkpoints store them.</summary>
    public static IReadOnlyList<string> BufferNames { get; } = ["momentum_buffer", "exp_avg", "exp_avg_sq", "square_avg", "sum"];
}
