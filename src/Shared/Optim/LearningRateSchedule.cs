using System.Globalization;

namespace Cluster.Optim;

/// <summary>
/// An epoch-based learning-rate schedule, as PyTorch's LR schedulers stepped once per epoch: the
/// rate for epoch e (from 0) is a function of e and the base rate η₀.
/// </summary>
public abstract class LearningRateSchedule
{
    /// <summary>What <see cref="Parse"/> accepts, for error messages and help text.</summary>
    public const string Syntax = "constant, step:K:GAMMA, exp:GAMMA or cosine, optionally prefixed by warmup:N, (e.g. warmup:1,cosine)";

    /// <summary>The rate for <paramref name="epoch"/> (≥ 0, counted from 0) given the base rate <paramref name="baseRate"/>.</summary>
    public float RateAt(int epoch, float baseRate)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        return Rate(epoch, baseRate);
    }

    /// <summary>The schedule's formula, for an epoch already known to be ≥ 0.</summary>
    protected abstract float Rate(int epoch, float baseRate);

    /// <summary>
    /// Parses a command-line schedule for a run of <paramref name="epochs"/> epochs:
    /// <c>constant</c> (<see cref="ConstantSchedule"/>), <c>step:K:GAMMA</c> (<see cref="StepDecay"/>,
    /// K ≥ 1, 0 &lt; GAMMA ≤ 1), <c>exp:GAMMA</c> (<see cref="ExponentialDecay"/>, 0 &lt; GAMMA ≤ 1),
    /// <c>cosine</c> (<see cref="CosineAnnealing"/> down to 0 over the epochs left after warm-up,
    /// at least 1), each optionally prefixed by <c>warmup:N,</c> (<see cref="Warmup"/>, N ≥ 0).
    /// </summary>
    /// <exception cref="ArgumentException">The text is not a valid schedule; the one-line message names the bad value and what is allowed.</exception>
    public static LearningRateSchedule Parse(string text, int epochs)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (epochs < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(epochs), $"epochs {epochs} must be ≥ 1");
        }
        string trimmed = text.Trim();
        if (!trimmed.StartsWith("warmup:", StringComparison.Ordinal))
        {
            return ParseSingle(trimmed, epochs);
        }
        int comma = trimmed.IndexOf(',', StringComparison.Ordinal);
        if (comma < 0)
        {
            throw new ArgumentException($"schedule '{text}' has a warm-up but no schedule after it: use warmup:N,SCHEDULE with SCHEDULE one of constant, step:K:GAMMA, exp:GAMMA, cosine", nameof(text));
        }
        string count = trimmed["warmup:".Length..comma];
        if (!int.TryParse(count, NumberStyles.None, CultureInfo.InvariantCulture, out int warmup))
        {
            throw new ArgumentException($"warm-up '{count}' in schedule '{text}' must be a whole number of epochs ≥ 0", nameof(text));
        }
        return new Warmup(warmup, ParseSingle(trimmed[(comma + 1)..].Trim(), Math.Max(1, epochs - warmup)));
    }

    private static LearningRateSchedule ParseSingle(string text, int epochs)
    {
        string[] parts = text.Split(':');
        switch (parts[0])
        {
            case "constant" when parts.Length == 1:
                return new ConstantSchedule();
            case "cosine" when parts.Length == 1:
                return new CosineAnnealing(epochs);
            case "exp" when parts.Length == 2:
                return new ExponentialDecay(ParseGamma(parts[1], text));
            case "step" when parts.Length == 3:
                if (!int.TryParse(parts[1], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int size) || size < 1)
                {
                    throw new ArgumentException($"step size '{parts[1]}' in schedule '{text}' must be a whole number of epochs ≥ 1", nameof(text));
                }
                return new StepDecay(size, ParseGamma(parts[2], text));
            default:
                throw new ArgumentException($"schedule '{text}' is not known: use {Syntax}", nameof(text));
        }
    }

    private static float ParseGamma(string value, string text)
    {
        if (!float.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out float gamma) || !(gamma is > 0f and <= 1f))
        {
            throw new ArgumentException($"gamma '{value}' in schedule '{text}' must be a number with 0 < gamma ≤ 1", nameof(text));
        }
        return gamma;
    }
}
