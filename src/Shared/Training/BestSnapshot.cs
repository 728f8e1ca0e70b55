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

    /// <summary>Puts the best weights back into the model.</summary>
    public void Restore()
    {
        _parameters.CopyTo(model.Parameters, 0);
        _state.CopyTo(model.State, 0);
    }
}
