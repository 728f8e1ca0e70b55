using System.Diagnostics.Metrics;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Cluster.Data;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace Cluster.ParameterServer;

/// <summary>
/// Builds and runs the parameter server: Kestrel speaking HTTP/2, without TLS (h2c) or over TLS
/// with a certificate (<see cref="Wire.ClusterTls"/>), with flow control windows opened wide, because a pull or push moves the whole model: with the default
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
    /// With a <paramref name="token"/>, every call must carry it (<see cref="ClusterTokenInterceptor"/>);
    /// with a <paramref name="certificate"/> (and its key), gRPC is served over TLS only.
    /// </summary>
    public static WebApplication Build(ServerOptions options, FashionMnist data, Action<ILoggingBuilder>? logging = null, string? token = null, X509Certificate2? certificate = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        if (logging is not null)
        {
            logging(builder.Logging);
        }
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(IPAddress.Parse(options.Host), options.Port, listen =>
            {
                listen.Protocols = HttpProtocols.Http2;
                if (certificate is not null)
                {
                    listen.UseHttps(certificate);
                }
            });
            if (options.PrometheusPort is int metricsPort)
            {
                // Prometheus scrapes over HTTP/1.1; the gRPC endpoint speaks HTTP/2 only.
                kestrel.Listen(IPAddress.Parse(options.Host), metricsPort, listen => listen.Protocols = HttpProtocols.Http1);
            }
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
        if (options.PrometheusPort is not null)
        {
            builder.Services.AddOpenTelemetry()
                .ConfigureResource(resource => resource.AddService("cluster-server"))
                .WithMetrics(metrics => metrics
                .AddMeter(ServerMetrics.MeterName)
                .AddRuntimeInstrumentation()
                .AddPrometheusExporter());
        }
        builder.Services.AddSingleton(sp => new TrainingCoordinator(options, data, sp.GetRequiredService<ILoggerFactory>().CreateLogger("cluster.server"),
            options.PrometheusPort is null ? null : sp.GetRequiredService<IMeterFactory>().Create(ServerMetrics.MeterName)));
        builder.Services.AddHostedService<LivenessMonitor>();
        var app = builder.Build();
        app.MapGrpcService<ParameterServerService>();
        if (options.PrometheusPort is not null)
        {
            // Only over HTTP/1.1, that is on the metrics port: the gRPC port serves gRPC alone.
            app.UseOpenTelemetryPrometheusScrapingEndpoint(context => context.Request.Path == "/metrics" && HttpProtocol.IsHttp11(context.Request.Protocol));
        }
        return app;
    }

    /// <summary>The address the started server listens on for gRPC (with the port filled in when 0 was asked).</summary>
    public static string ListeningAddress(WebApplication app) => Addresses(app).FirstOrDefault() ?? "";

    /// <summary>Where the started server serves its Prometheus metrics, or null without <see cref="ServerOptions.PrometheusPort"/>.</summary>
    public static string? MetricsAddress(WebApplication app) =>
        app.Services.GetRequiredService<ServerOptions>().PrometheusPort is null ? null : Addresses(app).Skip(1).FirstOrDefault() + "/metrics";

    /// <summary>The endpoints in the order they were bound: gRPC first, then metrics.</summary>
    private static IEnumerable<string> Addresses(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
}
