namespace Cluster.Training;

/// <summary>A setting outside what Cluster allows; the message is one line naming the value and the allowed range.</summary>
public sealed class InvalidOptionException(string message) : Exception(message);
