using Cluster.Checkpoints;
using Cluster.Models;

namespace Cluster.Training;

/// <summary>
/// The best weights seen so far by validation accuracy (the "solver" of the curriculum keeps them),
/// and how many epochs have passed without improvement.
/// </summary>
public sealed class BestSnapshot(Sequential model)
{
    private readonly float[] _parameters = new float[model.Parameters.Length];
    private readonly float[] _state = new float[model.State.Length];

    /// <summary>The epoch of the best weights (0: none yet).</summary>
    public int Epoch { get; private set; }

    /// <summary>Their validation accuracy.</summary>
    public double Accuracy { get; private set; } = double.NegativeInfinity;

    /// <summary>Records the model after <paramref name="epoch"/>; returns the epochs since the best.</summary>
    public int Offer(int epoch, double accuracy)
    {
        if (accuracy > Accuracy)
        {
            Accuracy = accuracy;
            Epoch = epoch;
            model.Parameters.CopyTo(_parameters, 0);
            model.State.CopyTo(_state, 0);
        }
        return epoch - Epoch;
    }

    /// <summary>The best weights so far, for a checkpoint to resume from; null before the first offer.</summary>
    public BestWeights? Capture() => Epoch == 0 ? null : new BestWeights(Epoch, Accuracy, [.. _parameters, .. _state]);

    /// <summary>Takes over the best weights a resumed run's checkpoint kept (<see cref="Capture"/>).</summary>
    public void Adopt(BestWeights best)
    {
        if (best.Saved.Length != _parameters.Length + _state.Length)
        {
            throw new ArgumentException($"the best weights hold {best.Saved.Length} values; the model saves {_parameters.Length + _state.Length}", nameof(best));
        }
        Epoch = best.Epoch;
        Accuracy = best.ValidationAccuracy;
        best.Saved.AsSpan(0, _parameters.Length).CopyTo(_parameters);
        best.Saved.AsSpan(_parameters.Length).CopyTo(_state);
    }

    /// <summary>Puts the best weights back into the model.</summary>
    public void Restore()
    {
        _parameters.CopyTo(model.Parameters, 0);
        _state.CopyTo(model.State, 0);
    }
}
