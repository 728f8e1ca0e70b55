namespace Cluster.Models;

/// <summary>A model spec, preset name or layer argument that Cluster cannot build; the message is one line naming the bad value.</summary>
public sealed class ModelSpecException(string message) : Exception(message);
