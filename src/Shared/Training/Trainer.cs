using Cluster.Data;
using Cluster.Models;
using Cluster.Optim;
using Cluster.Tensors;

namespace Cluster.Training;

/// <summary>Loss and accuracy of a model over a dataset.</summary>
/// <param name="Loss">Mean loss per sample.</param>
/// <param name="Accuracy">Fraction of samples whose highest output is the label, in [0, 1].</param>
/// <param name="Count">Samples evaluated.</param>
/// <param name="ClassAccuracy">Accuracy on the samples of each class (0 for a class with none).</param>
public sealed record Evaluation(double Loss, double Accuracy, int Count, double[] ClassAccuracy);

/// <summary>
/// One model, one optimizer, and the step that joins them: zero the gradients, forward, loss,
/// backward, update. Input and label buffers are allocated once for the largest batch.
/// </summary>
public sealed class Trainer
{
    private readonly Tensor _images;
    private readonly int[] _labels;

    /// <summary>Creates a trainer for batches of up to <paramref name="maxBatch"/> samples.</summary>
    public Trainer(Sequential model, Optimizer optimizer, int maxBatch)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        Model = model;
        Optimizer = optimizer;
        _images = Tensor.Zeros([maxBatch, .. model.InputShape]);
        _labels = new int[maxBatch];
        model.Allocate(maxBatch);
    }

    /// <summary>The model being trained.</summary>
    public Sequential Model { get; }

    /// <summary>The optimizer applying the updates.</summary>
    public Optimizer Optimizer { get; }

    /// <summary>When set, the gradient is scaled down to this global L2 norm before each update.</summary>
    public float? ClipNorm { get; init; }

    /// <summary>The input buffer a caller may fill directly before <see cref="Step(int)"/>.</summary>
    public Tensor Images => _images;

    /// <summary>The label buffer a caller may fill directly before <see cref="Step(int)"/>.</summary>
    public Span<int> Labels => _labels;

    /// <summary>
    /// Computes the gradient of the mean loss of the first <paramref name="batch"/> samples in
    /// <see cref="Images"/>/<see cref="Labels"/> into the model's gradient buffer, without updating.
    /// Returns the loss. (A cluster worker stops here and pushes the gradient.)
    /// </summary>
    public float ComputeGradient(int batch) => ComputeGradient(batch, null, null);

    /// <summary>
    /// As <see cref="ComputeGradient(int)"/>, telling <paramref name="lossKnown"/> the loss once the
    /// forward pass is done and <paramref name="gradientsReadyFrom"/> each offset from which the
    /// gradients are final (see <see cref="Sequential.Backward(Action{int})"/>).
    /// </summary>
    public float ComputeGradient(int batch, Action<float>? lossKnown, Action<int>? gradientsReadyFrom) =>
        ComputeGradient(batch, null, lossKnown, gradientsReadyFrom);

    /// <summary>
    /// As <see cref="ComputeGradient(int, Action{float}, Action{int})"/>, calling
    /// <paramref name="weightsNeeded"/> before each layer of the forward pass (see
    /// <see cref="Sequential.Forward(Tensor, bool, Action{int, int})"/>).
    /// </summary>
    public float ComputeGradient(int batch, Action<int, int>? weightsNeeded, Action<float>? lossKnown, Action<int>? gradientsReadyFrom)
    {
        _images.SetBatchSize(batch);
        var labels = _labels.AsSpan(0, batch);
        Model.ZeroGradients();
        var output = Model.Forward(_images, training: true, weightsNeeded);
        float loss = Model.Loss.Forward(output, labels);
        lossKnown?.Invoke(loss);
        Model.Loss.Backward(output, labels, Model.OutputGradient);
        Model.Backward(gradientsReadyFrom);
        return loss;
    }

    /// <summary>One full training step on the first <paramref name="batch"/> buffered samples; returns the loss before the update.</summary>
    public float Step(int batch)
    {
        float loss = ComputeGradient(batch);
        if (ClipNorm is float maxNorm)
        {
            GradientClipping.ClipByGlobalNorm(Model.Gradients, maxNorm);
        }
        Optimizer.Step(Model.Parameters, Model.Gradients);
        return loss;
    }

    /// <summary>Evaluates <paramref name="model"/> on every sample of <paramref name="data"/>, in batches.</summary>
    public static Evaluation Evaluate(Sequential model, Dataset data, int batchSize = 256)
    {
        var input = Tensor.Zeros([batchSize, .. model.InputShape]);
        var labels = new int[batchSize];
        double lossSum = 0;
        int correct = 0;
        var classCorrect = new int[data.Classes];
        var classTotal = new int[data.Classes];
        for (int start = 0; start < data.Count; start += batchSize)
        {
            int count = Math.Min(batchSize, data.Count - start);
            input.SetBatchSize(count);
            data.Images.AsSpan(start * data.SampleSize, count * data.SampleSize).CopyTo(input.Span);
            for (int i = 0; i < count; i++)
            {
                labels[i] = data.Labels[start + i];
            }
            var output = model.Forward(input, training: false);
            lossSum += model.Loss.Forward(output, labels.AsSpan(0, count)) * (double)count;
            for (int i = 0; i < count; i++)
            {
                classTotal[labels[i]]++;
                if (TensorPrimitives.IndexOfMax(output.Sample(i)) == labels[i])
                {
                    correct++;
                    classCorrect[labels[i]]++;
                }
            }
        }
        var classAccuracy = classCorrect.Select((c, k) => classTotal[k] == 0 ? 0.0 : (double)c / classTotal[k]).ToArray();
        return new Evaluation(lossSum / Math.Max(1, data.Count), (double)correct / Math.Max(1, data.Count), data.Count, classAccuracy);
    }
}
