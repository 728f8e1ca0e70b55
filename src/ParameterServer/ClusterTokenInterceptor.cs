using Cluster.Wire;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Logging;

namespace Cluster.ParameterServer;

/// <summary>
/// Refuses every call that does not carry the server's cluster token (<see cref="ClusterToken"/>)
/// with Unauthenticated, before the call's handler runs: nothing about the run is read or changed.
/// Refusals are logged and counted (<see cref="RunRecorder.Unauthenticated"/>).
/// </summary>
internal sealed class ClusterTokenInterceptor(string token, TrainingCoordinator run, ILogger<ClusterTokenInterceptor> logger) : Interceptor
{
    /// <inheritdoc/>
    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(request, context);
    }

    /// <inheritdoc/>
    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(requestStream, context);
    }

    /// <inheritdoc/>
    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(request, responseStream, context);
    }

    /// <inheritdoc/>
    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(requestStream, responseStream, context);
    }

    private void Check(ServerCallContext context)
    {
        string? presented = context.RequestHeaders.GetValue(ClusterToken.HeaderName);
        if (ClusterToken.Matches(presented, token))
        {
            return;
        }
        run.Recorder.CountUnauthenticated();
        string what = presented is null ? "without a cluster token" : "with a wrong cluster token";
        logger.LogWarning("refused: {Method} from {Peer} {What}", context.Method, context.Peer, what);
        throw new RpcException(new Status(StatusCode.Unauthenticated,
            $"call {what}: give this server's token in {ClusterToken.EnvironmentVariable} or with --token-file"));
    }
}
