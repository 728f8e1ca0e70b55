using Cluster.Training;

namespace Cluster.ParameterServer.Tests;

/// <summary>The server the service tests start on 127.0.0.1 (a free port): one epoch of mlp on the embedded subset.</summary>
internal static class LoopbackServer
{
    /// <summary>
    /// Its options, not yet validated, for <paramref name="workers"/> workers in <paramref name="mode"/>;
    /// the worker timeout is long, since these tests' clients send no heartbeats.
    /// </summary>
    public static ServerOptions Options(int workers, string mode) => new()
    {
        Training = new TrainingOptions { Model = "mlp", Data = "embedded", Epochs = 1 },
        Workers = workers,
        Mode = mode,
        Host = "127.0.0.1",
        Port = 0,
        WorkerTimeoutSeconds = 600,
    };
}
