using System.Net;
using Cluster.Data;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cluster.ParameterServer;

/// <summary>
/// Builds and runs the parameter server: Kestrel speaking HTTP/2 without TLS (h2c), with flow
/// control windows opened wide, because a pull or push moves the whole model: with the default
/// 768 KiB stream window a 100 MiB transfer stalls on window updates hundreds of times. Kestrel's
/// memory comes in 64 KiB blocks (<see cref="LargeBlockMemoryPoolFactory"/>), so that the socket is
/// read 64 KiB at a time rather than 4 KiB.
/// </summary>
public static class ParameterServerHost
{
    /// <summary>HTTP/2 stream window, on the server and in the workers' client.</summary>
    public const int StreamWindowBytes = 16 * 1024 * 1024;

    /// <summary>HTTP/2 connection window.</summary>
    public const int ConnectionWindowBytes = 32 * 1024 * 1024;

    /// <summary>Largest gRPC message accepted: one chunk and its envelope.</summary>
    public static int MaxMessageBytes(int chunkFloats) => chunkFloats * sizeof(float) + 64 * 1024;

    /// <summary>
    /// Creates the server (not yet started) for <paramref name="options"/>, which must be validated.
    /// With a <paramref name="token"/>, every call must carry it (<see cref="ClusterTokenInterceptor"/>).
    /// </summary>
    public static WebApplication Build(ServerOptions options, FashionMnist data, Action<ILoggingBuilder>? logging = null, string? token = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        if (logging is not null)
        {
            logging(builder.Logging);
        }
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(IPAddress.Parse(options.Host), options.Port, listen => listen.Protocols = HttpProtocols.Http2);
            kestrel.Limits.Http2.InitialStreamWindowSize = StreamWindowBytes;
            kestrel.Limits.Http2.InitialConnectionWindowSize = ConnectionWindowBytes;
            kestrel.Limits.Http2.MaxFrameSize = 1024 * 1024 - 1;
            kestrel.Limits.MaxRequestBodySize = null;
            kestrel.Limits.MinRequestBodyDataRate = null;
        });
        builder.Services.AddSingleton<IMemoryPoolFactory<byte>>(new LargeBlockMemoryPoolFactory(LargeBlockMemoryPoolFactory.DefaultBlockBytes));
        builder.Services.AddGrpc(grpc =>
        {
            grpc.MaxReceiveMessageSize = MaxMessageBytes(options.ChunkFloats);
            grpc.MaxSendMessageSize = MaxMessageBytes(options.ChunkFloats);
            grpc.EnableDetailedErrors = true;
            if (token is not null)
            {
                grpc.Interceptors.Add<ClusterTokenInterceptor>(token);
            }
        });
        ParameterServerMethods.Register(builder.Services);
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(data);
        builder.Services.AddSingleton(sp => new TrainingCoordinator(options, data, sp.GetRequiredService<ILoggerFactory>().CreateLogger("cluster.server")));
        builder.Services.AddHostedService<LivenessMonitor>();
        var app = builder.Build();
        app.MapGrpcService<ParameterServerService>();
        return app;
    }

    /// <summary>The address the started server listens on (with the port filled in when 0 was asked).</summary>
    public static string ListeningAddress(WebApplication app)
    {
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>();
        return addresses?.Addresses.FirstOrDefault() ?? "";
    }
}
