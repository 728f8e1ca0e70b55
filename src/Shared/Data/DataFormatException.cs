namespace Cluster.Data;

/// <summary>
/// Thrown when a data file cannot be read or is corrupt. The message is one line that names the
/// file, says what is wrong and what was expected, so that the CLI can print it as it is.
/// </summary>
public sealed class DataFormatException : Exception
{
    /// <summary>Creates the exception with its one-line message.</summary>
    public DataFormatException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its one-line message and the lower-level error that caused it.</summary>
    public DataFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
