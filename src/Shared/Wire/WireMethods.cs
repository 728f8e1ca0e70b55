using Google.Protobuf;
using Grpc.Core;

namespace Cluster.Wire;

/// <summary>
/// The parameter server's gRPC methods, as the server binds them and as workers call the chunked
/// ones. Every byte on the wire is the protobuf encoding of protos/cluster.proto, so a client
/// generated from it in any language talks to the server unchanged; only the messages that carry
/// chunks are read by hand (<see cref="ReceivedGradientChunk"/>, <see cref="ReceivedExchangeRequest"/>,
/// <see cref="ReceivedWeightChunk"/>), into pooled buffers instead of a new array per chunk.
/// </summary>
public static class WireMethods
{
    /// <summary>The gRPC service name: package and service of protos/cluster.proto.</summary>
    public const string ServiceName = "cluster.v1.ParameterServer";

    /// <summary>The methods as the parameter server binds them.</summary>
    public static class Server
    {
        /// <summary>rpc Join.</summary>
        public static Method<JoinRequest, JoinReply> Join { get; } = Create(MethodType.Unary, "Join", Protobuf(JoinRequest.Parser), Protobuf(JoinReply.Parser));

        /// <summary>rpc Pull: weight chunks are written by protobuf straight into the response (the payload wraps the snapshot, no copy before the transport).</summary>
        public static Method<PullRequest, WeightChunk> Pull { get; } = Create(MethodType.ServerStreaming, "Pull", Protobuf(PullRequest.Parser), Protobuf(WeightChunk.Parser));

        /// <summary>rpc Push, with gradient chunks read by hand.</summary>
        public static Method<ReceivedGradientChunk, PushReply> Push { get; } = Create(MethodType.ClientStreaming, "Push", ReadOnly("GradientChunk", ReceivedGradientChunk.Parse), Protobuf(PushReply.Parser));

        /// <summary>rpc Exchange, with gradient chunks read by hand.</summary>
        public static Method<ReceivedExchangeRequest, WeightChunk> Exchange { get; } = Create(MethodType.DuplexStreaming, "Exchange", ReadOnly("ExchangeRequest", ReceivedExchangeRequest.Parse), Protobuf(WeightChunk.Parser));

        /// <summary>rpc Heartbeat.</summary>
        public static Method<HeartbeatRequest, HeartbeatReply> Heartbeat { get; } = Create(MethodType.Unary, "Heartbeat", Protobuf(HeartbeatRequest.Parser), Protobuf(HeartbeatReply.Parser));

        /// <summary>rpc Leave.</summary>
        public static Method<LeaveRequest, LeaveReply> Leave { get; } = Create(MethodType.Unary, "Leave", Protobuf(LeaveRequest.Parser), Protobuf(LeaveReply.Parser));

        /// <summary>rpc Status.</summary>
        public static Method<StatusRequest, StatusReply> Status { get; } = Create(MethodType.Unary, "Status", Protobuf(StatusRequest.Parser), Protobuf(StatusReply.Parser));
    }

    /// <summary>The chunked methods as workers call them; the small calls go through the generated <see cref="ParameterServer.ParameterServerClient"/>.</summary>
    public static class Worker
    {
        /// <summary>rpc Pull, with weight chunks read by hand.</summary>
        public static Method<PullRequest, ReceivedWeightChunk> Pull { get; } = Create(MethodType.ServerStreaming, "Pull", Protobuf(PullRequest.Parser), ReadOnly("WeightChunk", ReceivedWeightChunk.Parse));

        /// <summary>rpc Exchange, with weight chunks read by hand.</summary>
        public static Method<ExchangeRequest, ReceivedWeightChunk> Exchange { get; } = Create(MethodType.DuplexStreaming, "Exchange", Protobuf(ExchangeRequest.Parser), ReadOnly("WeightChunk", ReceivedWeightChunk.Parse));
    }

    private static Method<TRequest, TResponse> Create<TRequest, TResponse>(MethodType type, string name, Marshaller<TRequest> request, Marshaller<TResponse> response)
        where TRequest : class
        where TResponse : class =>
        new(type, ServiceName, name, request, response);

    /// <summary>The generated code's own marshalling: the size first, then the message written straight into the transport's buffer.</summary>
    private static Marshaller<T> Protobuf<T>(MessageParser<T> parser)
        where T : IMessage<T>, IBufferMessage =>
        Marshallers.Create<T>(
            (message, context) =>
            {
                context.SetPayloadLength(message.CalculateSize());
                message.WriteTo(context.GetBufferWriter());
                context.Complete();
            },
            context => parser.ParseFrom(context.PayloadAsReadOnlySequence()));

    /// <summary>A message that is only ever received: parsed by hand, never sent; a malformed one is InvalidArgument.</summary>
    private static Marshaller<T> ReadOnly<T>(string name, Func<System.Buffers.ReadOnlySequence<byte>, T> parse) =>
        Marshallers.Create<T>(
            (_, _) => throw new InvalidOperationException($"{typeof(T).Name} is only ever received"),
            context =>
            {
                try
                {
                    return parse(context.PayloadAsReadOnlySequence());
                }
                catch (InvalidDataException e)
                {
                    throw new RpcException(new Grpc.Core.Status(StatusCode.InvalidArgument, $"malformed {name}: {e.Message}"));
                }
            });
}
