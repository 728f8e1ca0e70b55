using Cluster.Layers;
using Cluster.Tensors;

namespace Cluster.Tests.Layers;

public sealed class RecurrentLayerTests
{
    public static TheoryData<string> Kinds => new("rnn", "lstm", "gru");

    private static RecurrentLayer Create(string kind, RecurrentOutput output) => kind switch
    {
        "rnn" => new Rnn(6, output),
        "lstm" => new Lstm(6, output),
        "gru" => new Gru(6, output),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "no such layer"),
    };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Two_threads_splitting_the_batch_give_what_one_thread_gives(string kind)
    {
        // Seven samples: the two threads get unequal slices (4 and 3).
        var one = new GradientChecker(Create(kind, RecurrentOutput.Sequence), 7, [9, 5], GradientChecker.SmoothInput, seed: 4);
        var two = new GradientChecker(Create(kind, RecurrentOutput.Sequence), 7, [9, 5], GradientChecker.SmoothInput, seed: 4);
        using var team = new ThreadTeam(2);
        two.Layer.Team = team;

        one.ForwardBackward();
        two.ForwardBackward();

        Assert.Equal(one.Y.Span.ToArray(), two.Y.Span.ToArray());
        Assert.Equal(one.Dx.Span.ToArray(), two.Dx.Span.ToArray());
        // The weight gradients sum over every step and sample; the threads may split that sum.
        Assert.Equal(one.Gradients, two.Gradients, (a, b) => Math.Abs(a - b) <= 1e-5f * Math.Max(1f, Math.Abs(a)));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void A_smaller_batch_after_a_larger_one_gives_the_per_sample_results_of_the_larger(string kind)
    {
        var full = new GradientChecker(Create(kind, RecurrentOutput.Last), 5, [4, 3], GradientChecker.SmoothInput, seed: 8);
        full.ForwardBackward();
        var firstTwoOutputs = full.Y.Span[..(2 * 6)].ToArray();

        full.X.SetBatchSize(2);
        full.Y.SetBatchSize(2);
        full.R.SetBatchSize(2);
        full.Dx.SetBatchSize(2);
        full.Layer.Forward(full.X, full.Y, training: true);

        Assert.Equal(firstTwoOutputs, full.Y.Span.ToArray());
    }

    [Fact]
    public void The_last_step_output_is_the_last_row_of_the_every_step_output()
    {
        var last = new GradientChecker(new Lstm(6), 3, [5, 4], GradientChecker.SmoothInput, seed: 2);
        var every = new GradientChecker(new Lstm(6, RecurrentOutput.Sequence), 3, [5, 4], GradientChecker.SmoothInput, seed: 2);

        last.Loss();
        every.Loss();

        for (int b = 0; b < 3; b++)
        {
            Assert.Equal(every.Y.Span.Slice(((b * 5) + 4) * 6, 6).ToArray(), last.Y.Span.Slice(b * 6, 6).ToArray());
        }
    }
}
