using Cluster.Optim;

namespace Cluster.Tests.Optim;

public sealed class LearningRateScheduleTests
{
    private const float Base = 0.1f;

    private static float[] Rates(LearningRateSchedule schedule, int epochs, float baseRate = Base) =>
        Enumerable.Range(0, epochs).Select(e => schedule.RateAt(e, baseRate)).ToArray();

    private static void AssertRates(double[] factors, float[] rates, float baseRate = Base)
    {
        Assert.Equal(factors.Length, rates.Length);
        for (int e = 0; e < rates.Length; e++)
        {
            Assert.True(Math.Abs(rates[e] - (factors[e] * baseRate)) <= 1e-7, $"epoch {e}: {rates[e]}, expected {factors[e] * baseRate}");
        }
    }

    [Fact]
    public void Constant_keeps_the_base_rate()
    {
        AssertRates([1, 1, 1, 1], Rates(new ConstantSchedule(), 4));
    }

    [Fact]
    public void Step_decay_multiplies_by_gamma_every_k_epochs()
    {
        AssertRates([1, 1, 0.5, 0.5, 0.25, 0.25, 0.125], Rates(new StepDecay(2, 0.5f), 7));
        AssertRates([1, 0.1, 0.01], Rates(new StepDecay(1, 0.1f), 3));
    }

    [Fact]
    public void Exponential_decay_multiplies_by_gamma_every_epoch()
    {
        AssertRates([1, 0.9, 0.81, 0.729], Rates(new ExponentialDecay(0.9f), 4));
    }

    [Fact]
    public void Cosine_annealing_falls_from_the_base_to_the_minimum_and_stays_there()
    {
        // (1 + cos(π·e/4)) / 2 for e = 0..4: 1, 0.8535534, 0.5, 0.1464466, 0; then held at 0.
        AssertRates([1, 0.85355339, 0.5, 0.14644661, 0, 0], Rates(new CosineAnnealing(4), 6));
        var withMin = new CosineAnnealing(4, minRate: 0.01f);
        Assert.Equal(0.055f, withMin.RateAt(2, Base), 1e-7f); // 0.01 + 0.09·0.5
        Assert.Equal(0.01f, withMin.RateAt(4, Base), 1e-7f);
        Assert.Equal(0.01f, withMin.RateAt(9, Base), 1e-7f);
    }

    [Fact]
    public void Warmup_climbs_linearly_then_runs_the_inner_schedule_from_its_epoch_zero()
    {
        // Base/(W+1)·(e+1) for e < 2: 1/3, 2/3; then step:1:0.5 from its own epoch 0.
        AssertRates([1 / 3.0, 2 / 3.0, 1, 0.5, 0.25], Rates(new Warmup(2, new StepDecay(1, 0.5f)), 5));
        AssertRates([1, 0.5, 0.25], Rates(new Warmup(0, new StepDecay(1, 0.5f)), 3));
    }

    [Fact]
    public void Parse_builds_each_schedule()
    {
        AssertRates([1, 1, 1], Rates(LearningRateSchedule.Parse("constant", 3), 3));
        AssertRates([1, 1, 0.5, 0.5, 0.25], Rates(LearningRateSchedule.Parse("step:2:0.5", 5), 5));
        AssertRates([1, 0.5, 0.25], Rates(LearningRateSchedule.Parse(" exp:0.5 ", 3), 3));
        var cosine = Assert.IsType<CosineAnnealing>(LearningRateSchedule.Parse("cosine", 4));
        Assert.Equal(4, cosine.TotalEpochs);
        Assert.Equal(0f, cosine.MinRate);
        AssertRates([1, 0.85355339, 0.5, 0.14644661, 0], Rates(cosine, 5));
    }

    [Fact]
    public void Parse_with_warmup_anneals_over_the_epochs_left()
    {
        var schedule = Assert.IsType<Warmup>(LearningRateSchedule.Parse("warmup:1,cosine", 5));

        Assert.Equal(1, schedule.WarmupEpochs);
        Assert.Equal(4, Assert.IsType<CosineAnnealing>(schedule.Inner).TotalEpochs);
        AssertRates([0.5, 1, 0.85355339, 0.5, 0.14644661, 0], Rates(schedule, 6));
        Assert.IsType<StepDecay>(Assert.IsType<Warmup>(LearningRateSchedule.Parse("warmup:0,step:3:0.1", 5)).Inner);
        Assert.Equal(1, Assert.IsType<CosineAnnealing>(Assert.IsType<Warmup>(LearningRateSchedule.Parse("warmup:9,cosine", 5)).Inner).TotalEpochs);
    }

    [Theory]
    [InlineData("step:0:0.5", "'0'")]
    [InlineData("step:-2:0.5", "'-2'")]
    [InlineData("step:x:0.5", "'x'")]
    [InlineData("step:2:0", "'0'")]
    [InlineData("step:2:1.5", "'1.5'")]
    [InlineData("step:2:-0.5", "'-0.5'")]
    [InlineData("exp:0", "'0'")]
    [InlineData("exp:2", "'2'")]
    [InlineData("exp:NaN", "'NaN'")]
    [InlineData("step:2", "'step:2'")]
    [InlineData("linear", "'linear'")]
    [InlineData("", "''")]
    [InlineData("cosine:0.1", "'cosine:0.1'")]
    [InlineData("warmup:-1,cosine", "'-1'")]
    [InlineData("warmup:x,cosine", "'x'")]
    [InlineData("warmup:1", "'warmup:1'")]
    [InlineData("warmup:1,warmup:1,cosine", "'warmup:1,cosine'")]
    public void Parse_rejects_bad_input_with_one_line_naming_the_value(string text, string named)
    {
        var error = Assert.Throws<ArgumentException>(() => LearningRateSchedule.Parse(text, 10));

        Assert.Contains(named, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', error.Message);
        Assert.Matches("must be|use ", error.Message);
    }

    [Fact]
    public void Constructors_and_rate_reject_out_of_range_arguments()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new StepDecay(0, 0.5f));
        Assert.Throws<ArgumentOutOfRangeException>(() => new StepDecay(2, 1.01f));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ExponentialDecay(0f));
        Assert.Throws<ArgumentOutOfRangeException>(() => new CosineAnnealing(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new CosineAnnealing(5, -0.1f));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Warmup(-1, new ConstantSchedule()));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConstantSchedule().RateAt(-1, Base));
        Assert.Throws<ArgumentOutOfRangeException>(() => LearningRateSchedule.Parse("constant", 0));
    }
}
