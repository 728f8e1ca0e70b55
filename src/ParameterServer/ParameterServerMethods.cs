using Cluster.Wire;
using Grpc.AspNetCore.Server.Model;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Cluster.ParameterServer;

/// <summary>
/// Binds <see cref="ParameterServerService"/> to the methods of <see cref="WireMethods.Server"/>
/// (rather than to the generated service base, whose marshallers would parse every chunk into a
/// new array).
/// </summary>
internal sealed class ParameterServerMethods : IServiceMethodProvider<ParameterServerService>
{
    /// <summary>Registers the binding; <c>MapGrpcService&lt;ParameterServerService&gt;()</c> then maps it.</summary>
    public static void Register(IServiceCollection services) =>
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IServiceMethodProvider<ParameterServerService>, ParameterServerMethods>());

    /// <inheritdoc/>
    public void OnServiceMethodDiscovery(ServiceMethodProviderContext<ParameterServerService> context)
    {
        context.AddUnaryMethod(WireMethods.Server.Join, [], (service, request, call) => service.Join(request, call));
        context.AddServerStreamingMethod(WireMethods.Server.Pull, [], (service, request, writer, call) => service.Pull(request, writer, call));
        context.AddClientStreamingMethod(WireMethods.Server.Push, [], (service, reader, call) => service.Push(reader, call));
        context.AddDuplexStreamingMethod(WireMethods.Server.Exchange, [], (service, reader, writer, call) => service.Exchange(reader, writer, call));
        context.AddUnaryMethod(WireMethods.Server.Heartbeat, [], (service, request, call) => service.Heartbeat(request, call));
        context.AddUnaryMethod(WireMethods.Server.Leave, [], (service, request, call) => service.Leave(request, call));
        context.AddUnaryMethod(WireMethods.Server.Status, [], (service, request, call) => service.Status(request, call));
    }
}
