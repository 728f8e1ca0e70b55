namespace Cluster.Worker;

/// <summary>A worker's own settings (the training settings come from the server at join). Bound from the "Worker" configuration section and the command line.</summary>
public sealed class WorkerOptions
{
    /// <summary>The parameter server's address, e.g. http://10.0.0.5:5000. Required.</summary>
    public string Server { get; set; } = "";

    /// <summary>The cluster token every call carries, or null when the server has none. The command line reads it from a file or CLUSTER_TOKEN, never from a flag.</summary>
    public string? Token { get; set; }

    /// <summary>A PEM certificate the server's must chain to over https (a private authority's, or a self-signed server's own); null trusts the machine's authorities. Default null.</summary>
    public string? TlsAuthority { get; set; }

    /// <summary>Where this machine keeps the server's data (a directory of the IDX files, or "embedded"); null reads it where the server does. Default null.</summary>
    public string? Data { get; set; }

    /// <summary>Name shown in the server's status. Default: host:pid.</summary>
    public string Name { get; set; } = $"{Environment.MachineName}:{Environment.ProcessId}";

    /// <summary>The rank (place, and so shard) to ask the server for, 0 to N-1; null takes the lowest free. Default null.</summary>
    public int? Rank { get; set; }

    /// <summary>Compute threads; 0 takes the server's setting. Default 0.</summary>
    public int Threads { get; set; }

    /// <summary>How long to keep retrying to reach the server before giving up, in seconds. Default 60.</summary>
    public double ConnectTimeoutSeconds { get; set; } = 60;

    /// <summary>Interval between heartbeats, in seconds. Default 1.</summary>
    public double HeartbeatSeconds { get; set; } = 1;

    /// <summary>Extra wait per step in ms, to emulate a slow machine (stragglers in tests and demos). Default 0.</summary>
    public double SlowdownMs { get; set; }
}
