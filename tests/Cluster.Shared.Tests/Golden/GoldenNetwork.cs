using Cluster.Models;
using Cluster.Tensors;

namespace Cluster.Tests.Golden;

/// <summary>
/// Runs a <see cref="LayerCase"/> through Cluster's layers and compares every result with PyTorch's.
/// The layers come from the case's model spec and take their parameters and state from the case
/// by name, laid out by <see cref="Sequential"/>; the layers are then driven one by one, so that
/// the gradient with respect to the network's input is computed too.
/// </summary>
internal static class GoldenNetwork
{
    public static void Check(LayerCase c)
    {
        var model = new Sequential(ModelSpec.Parse(c.Model));
        Assert.Equal(c.Parameters.Keys.Order(StringComparer.Ordinal), model.NamedParameters.Select(p => p.Name).Order(StringComparer.Ordinal));
        foreach (var p in model.NamedParameters)
        {
            var values = c.Parameters[p.Name];
            Assert.True(p.Shape.SequenceEqual(values.Shape), $"{c.Name}: {p.Name} has shape {Tensor.ShapeText(p.Shape)} in Cluster but {Tensor.ShapeText(values.Shape)} in PyTorch");
            values.Values.CopyTo(model.Parameters, p.Offset);
        }
        var state = c.State ?? [];
        Assert.Equal(state.Keys.Order(StringComparer.Ordinal), model.NamedState.Select(s => s.Name).Order(StringComparer.Ordinal));
        foreach (var s in model.NamedState)
        {
            state[s.Name].Values.CopyTo(model.State, s.Offset);
        }

        var layers = model.Layers;
        var x = Tensor.FromValues(c.X.Values, c.X.Shape);
        int batch = x.BatchSize;
        var outputs = layers.Select(l => Tensor.Zeros([batch, .. l.OutputShape])).ToArray();
        var outputGrads = layers.Select(l => Tensor.Zeros([batch, .. l.OutputShape])).ToArray();
        var dx = Tensor.Zeros(c.X.Shape);
        foreach (var layer in layers)
        {
            layer.Allocate(batch);
        }

        var input = x;
        for (int i = 0; i < layers.Count; i++)
        {
            layers[i].Forward(input, outputs[i], c.Training);
            input = outputs[i];
        }
        GoldenAssert.Close(c.Name, "y", outputs[^1].Shape, outputs[^1].Span, c.Expected.Y);

        Assert.True(outputs[^1].Shape.SequenceEqual(c.Dy.Shape), $"{c.Name}: dy has shape {Tensor.ShapeText(c.Dy.Shape)} but y {outputs[^1]}");
        c.Dy.Values.CopyTo(outputGrads[^1].Span);
        // NaN shows any element the backward pass leaves unwritten.
        dx.Span.Fill(float.NaN);
        for (int i = layers.Count - 1; i >= 0; i--)
        {
            layers[i].Backward(i == 0 ? x : outputs[i - 1], outputs[i], outputGrads[i], i == 0 ? dx : outputGrads[i - 1]);
        }
        GoldenAssert.Close(c.Name, "dx", dx.Shape, dx.Span, c.Expected.Dx);
        foreach (var p in model.NamedParameters)
        {
            GoldenAssert.Close(c.Name, "dL/d" + p.Name, p.Shape, model.Gradients.AsSpan(p.Offset, p.Length), c.Expected.Gradients[p.Name]);
        }
        foreach (var s in model.NamedState)
        {
            // In evaluation the running statistics must not move; in training PyTorch gives their new values.
            var expected = c.Training ? c.Expected.State![s.Name] : state[s.Name];
            GoldenAssert.Close(c.Name, s.Name + " after the step", s.Shape, model.State.AsSpan(s.Offset, s.Length), expected);
        }
    }
}
