namespace Cluster.Data;

/// <summary>
/// The mean and standard deviation of the pixel values after scaling them to [0, 1] (dividing by
/// 255), computed on the training split only and applied to both splits as (x - Mean) / StdDev,
/// so that the test split is transformed exactly as the model saw training data.
/// </summary>
/// <param name="Mean">The mean pixel value, in [0, 1].</param>
/// <param name="StdDev">The population standard deviation of the pixel values; positive.</param>
public readonly record struct Normalization(float Mean, float StdDev)
{
    /// <summary>A black pixel after normalisation: what padding around an image shows.</summary>
    public float Background => -Mean / StdDev;
}
