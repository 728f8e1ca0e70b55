using Cluster.Models;

namespace Cluster.Checkpoints;

/// <summary>A checkpoint read back by <see cref="Checkpoint.Load"/>: the rebuilt model and the file's metadata.</summary>
/// <param name="Model">The model rebuilt from the spec stored in the file, with every parameter loaded.</param>
/// <param name="Metadata">
/// Every metadata entry of the file, including the ones Cluster writes itself
/// (<see cref="Checkpoint.SpecKey"/>, <see cref="Checkpoint.VersionKey"/>).
/// </param>
public sealed record LoadedCheckpoint(Sequential Model, IReadOnlyDictionary<string, string> Metadata);
