namespace Cluster.Checkpoints;

/// <summary>
/// Thrown when a checkpoint cannot be written, read or matched to a model. The message is one line
/// that names the file and says what is wrong (and, for a corrupt file, which tensor or header field),
/// so that the CLI can print it as it is.
/// </summary>
public sealed class CheckpointException : Exception
{
    /// <summary>Creates the exception with its one-line message.</summary>
    public CheckpointException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its one-line message and the lower-level error that caused it.</summary>
    public CheckpointException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
