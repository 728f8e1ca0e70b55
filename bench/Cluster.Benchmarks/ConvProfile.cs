using System.Diagnostics;
using Cluster.Layers;
using Cluster.Tensors;

namespace Cluster.Benchmarks;

/// <summary>
/// Forward and backward medians of one <see cref="Conv2D"/> at the shapes of the lenet and resnet
/// presets, batch 64 (<c>quick conv THREADS</c>), to separate convolution time from the rest of a step.
/// </summary>
public static class ConvProfile
{
    public static void Run(int threads)
    {
        using var team = threads == 1 ? null : new ThreadTeam(threads);
        (string Name, int Channels, int Size, int Filters, int Kernel, int Stride, int Padding)[] shapes =
        [
            ("lenet conv1", 1, 28, 32, 3, 1, 0),
            ("lenet conv2", 32, 13, 64, 3, 1, 0),
            ("resnet 16@28", 16, 28, 16, 3, 1, 1),
            ("resnet 32 s2", 16, 28, 32, 3, 2, 1),
            ("resnet 32@14", 32, 14, 32, 3, 1, 1),
            ("resnet 64@7", 64, 7, 64, 3, 1, 1),
            ("resnet 1x1 s2", 16, 28, 32, 1, 2, 0),
            ("1x1 64@7", 64, 7, 64, 1, 1, 0),
            ("1x1 32@28", 32, 28, 32, 1, 1, 0),
        ];
        const int batch = 64;
        foreach (var s in shapes)
        {
            var conv = new Conv2D(s.Filters, s.Kernel, s.Stride, s.Padding) { Team = team ?? ThreadTeam.Single };
            conv.Build([s.Channels, s.Size, s.Size]);
            var weights = conv.Parameters.Select(p => Tensor.Zeros(p.Shape)).ToArray();
            var gradients = conv.Parameters.Select(p => Tensor.Zeros(p.Shape)).ToArray();
            var random = new SeededRandom(5);
            foreach (ref float v in weights[0].Span) v = random.NextGaussian() * 0.1f;
            conv.Bind(weights, gradients);
            conv.Allocate(batch);
            var x = Tensor.Zeros([batch, s.Channels, s.Size, s.Size]);
            foreach (ref float v in x.Span) v = random.NextGaussian();
            var y = Tensor.Zeros([batch, .. conv.OutputShape]);
            var dy = Tensor.Zeros([batch, .. conv.OutputShape]);
            foreach (ref float v in dy.Span) v = random.NextGaussian();
            var dx = Tensor.Zeros([batch, s.Channels, s.Size, s.Size]);
            var forward = new List<double>();
            var backward = new List<double>();
            for (int i = 0; i < 45; i++)
            {
                long t = Stopwatch.GetTimestamp();
                conv.Forward(x, y, true);
                double f = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
                t = Stopwatch.GetTimestamp();
                conv.Backward(x, y, dy, dx);
                double b = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
                if (i >= 15)
                {
                    forward.Add(f);
                    backward.Add(b);
                }
            }
            forward.Sort();
            backward.Sort();
            double flops = 2.0 * batch * s.Filters * conv.OutputShape[1] * conv.OutputShape[2] * s.Channels * s.Kernel * s.Kernel;
            double fms = forward[forward.Count / 2], bms = backward[backward.Count / 2];
            Console.WriteLine($"{s.Name,-14} forward {fms,7:F3} ms {flops / fms / 1e6,5:F1} GFLOP/s  backward {bms,7:F3} ms {2 * flops / bms / 1e6,5:F1} GFLOP/s");
        }
    }
}
