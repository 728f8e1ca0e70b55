using System.Text.Json.Serialization;

namespace Cluster.Training;

/// <summary>What one epoch achieved; also the JSON object written per epoch by <c>--metrics</c>.</summary>
public sealed record EpochResult
{
    /// <summary>Epoch number, from 1.</summary>
    [JsonPropertyName("epoch")]
    public int Epoch { get; init; }

    /// <summary>Mean training loss over the epoch's batches.</summary>
    [JsonPropertyName("train_loss")]
    public double TrainLoss { get; init; }

    /// <summary>Mean loss on the test set after the epoch.</summary>
    [JsonPropertyName("test_loss")]
    public double TestLoss { get; init; }

    /// <summary>Test accuracy after the epoch, in [0, 1].</summary>
    [JsonPropertyName("test_accuracy")]
    public double TestAccuracy { get; init; }

    /// <summary>Training throughput (evaluation excluded).</summary>
    [JsonPropertyName("images_per_sec")]
    public double ImagesPerSec { get; init; }

    /// <summary>Wall time of the epoch, evaluation included, in seconds.</summary>
    [JsonPropertyName("seconds")]
    public double Seconds { get; init; }

    /// <summary>Accuracy on the held-out validation split, when there is one.</summary>
    [JsonPropertyName("validation_accuracy")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? ValidationAccuracy { get; init; }

    /// <summary>Loss on the held-out validation split, when there is one.</summary>
    [JsonPropertyName("validation_loss")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? ValidationLoss { get; init; }
}
