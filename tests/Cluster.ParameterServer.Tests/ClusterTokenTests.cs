using Cluster.Data;
using Cluster.Wire;
using Cluster.Worker;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;

namespace Cluster.ParameterServer.Tests;

/// <summary>
/// A server started with a cluster token, on loopback: every kind of call without the token or
/// with another one is refused Unauthenticated before it touches the run (nobody joins, the
/// weights stay as they were, the refusals are counted); with the token everything works.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "xunit disposes it through IAsyncLifetime.DisposeAsync")]
public sealed class ClusterTokenTests : IAsyncLifetime
{
    private const string Token = "0123456789abcdef0123456789abcdef";
    private WebApplication? _app;
    private string _address = "";

    public async Task InitializeAsync()
    {
        var options = LoopbackServer.Options(workers: 1, mode: "async");
        options.Validate();
        _app = ParameterServerHost.Build(options, FashionMnist.LoadEmbedded(), token: Token);
        await _app.StartAsync();
        _address = ParameterServerHost.ListeningAddress(_app);
    }

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }

    [Theory]
    [InlineData(null, "without a cluster token")]
    [InlineData("fedcba9876543210fedcba9876543210", "with a wrong cluster token")]
    [InlineData("0123456789abcdef0123456789abcde", "with a wrong cluster token")]
    public async Task EveryKindOfCallWithoutTheTokenIsRefusedAndChangesNothing(string? presented, string said)
    {
        using var stranger = new ParameterClient(_address, token: presented);
        using var member = new ParameterClient(_address, token: Token);
        var join = await member.Client.JoinAsync(new JoinRequest { WorkerName = "member" });
        var layout = ParameterClient.ChunksOf(join);
        var before = new float[join.ParameterCount];
        await member.PullAsync(join.WorkerId, 0, before, layout, CancellationToken.None);
        long refusedBefore = (await member.Client.StatusAsync(new StatusRequest())).UnauthenticatedCalls;

        var gradient = Enumerable.Repeat(1f, join.ParameterCount).ToArray();
        var weights = new float[join.ParameterCount];
        Func<Task>[] calls =
        [
            async () => await stranger.Client.JoinAsync(new JoinRequest { WorkerName = "stranger" }),
            async () => await stranger.Client.StatusAsync(new StatusRequest()),
            async () => await stranger.Client.HeartbeatAsync(new HeartbeatRequest { WorkerId = join.WorkerId }),
            async () => await stranger.Client.LeaveAsync(new LeaveRequest { WorkerId = join.WorkerId }),
            () => stranger.PullAsync(join.WorkerId, 0, weights, layout, CancellationToken.None),
            () => stranger.PushAsync(join.WorkerId, 1, 0, FloatBytes.AsBytes(gradient), layout, 1f, 64, CancellationToken.None),
            async () =>
            {
                await using var exchange = stranger.OpenExchange(layout, CancellationToken.None);
                await exchange.PushAsync(join.WorkerId, 1, 0, FloatBytes.AsBytes(gradient), 1f, 64, CancellationToken.None);
                await exchange.PullAsync(join.WorkerId, 0, weights, CancellationToken.None);
            },
        ];
        foreach (var call in calls)
        {
            var e = await Assert.ThrowsAsync<RpcException>(() => call().WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Equal(StatusCode.Unauthenticated, e.StatusCode);
            Assert.Contains(said, e.Status.Detail);
            Assert.Contains(ClusterToken.EnvironmentVariable, e.Status.Detail);
        }

        var status = await member.Client.StatusAsync(new StatusRequest());
        Assert.Equal(calls.Length, status.UnauthenticatedCalls - refusedBefore);
        // The member is still in, nobody else joined, no update was applied.
        Assert.Equal(["member"], status.Workers.Where(w => w.Active).Select(w => w.Name));
        Assert.Equal(0, status.Version);
        var after = new float[join.ParameterCount];
        await member.PullAsync(join.WorkerId, 0, after, layout, CancellationToken.None);
        Assert.Equal(before, after);
        await member.Client.LeaveAsync(new LeaveRequest { WorkerId = join.WorkerId });
    }

    [Fact]
    public async Task WithTheTokenAPushIsApplied()
    {
        using var member = new ParameterClient(_address, token: Token);
        var join = await member.Client.JoinAsync(new JoinRequest { WorkerName = "member" });
        var layout = ParameterClient.ChunksOf(join);
        var before = new float[join.ParameterCount];
        var pulled = await member.PullAsync(join.WorkerId, 0, before, layout, CancellationToken.None);
        var gradient = Enumerable.Repeat(1f, join.ParameterCount).ToArray();
        var reply = await member.PushAsync(join.WorkerId, 1, pulled.Version, FloatBytes.AsBytes(gradient), layout, 1f, 64, CancellationToken.None);
        Assert.Equal("applied", reply.Outcome);
        var after = new float[join.ParameterCount];
        await member.PullAsync(join.WorkerId, 0, after, layout, CancellationToken.None);
        Assert.NotEqual(before[0], after[0]);
        await member.Client.LeaveAsync(new LeaveRequest { WorkerId = join.WorkerId });
    }
}
