namespace Cluster.ParameterServer.Tests;

/// <summary>
/// Tests whose outcome depends on how workers interleave (staleness, stragglers) run alone, not
/// beside other test classes competing for the same two cores.
/// </summary>
[CollectionDefinition(nameof(TimingSensitive), DisableParallelization = true)]
public sealed class TimingSensitive;
