using Cluster.Data;
using Cluster.Tests;
using Cluster.Wire;
using Cluster.Worker;
using Grpc.Core;

namespace Cluster.ParameterServer.Tests;

/// <summary>
/// A server with a certificate serves gRPC over TLS only: a client that trusts the certificate (or
/// the authority behind it) joins, pulls and pushes as over h2c; one that trusts another
/// certificate, or only the machine's authorities, is refused in the handshake, and a client
/// speaking h2c gets nothing.
/// </summary>
public sealed class TlsTests
{
    [Fact]
    public async Task AClientTrustingTheServersCertificateTrainsOverTlsAndOthersAreRefusedInTheHandshake()
    {
        using var scratch = new ScratchDirectory();
        var (certificateFile, keyFile) = TestCertificates.WriteSelfSigned(scratch, "server");
        var (otherFile, _) = TestCertificates.WriteSelfSigned(scratch, "other");
        var options = LoopbackServer.Options(workers: 1, mode: "async");
        options.Validate();
        using var certificate = ClusterTls.LoadServerCertificate(certificateFile, keyFile);
        await using var app = ParameterServerHost.Build(options, FashionMnist.LoadEmbedded(), certificate: certificate);
        await app.StartAsync();
        string address = ParameterServerHost.ListeningAddress(app);
        Assert.StartsWith("https://127.0.0.1:", address);

        using var authority = ClusterTls.LoadAuthority(certificateFile);
        using var member = new ParameterClient(address, authority: authority);
        var join = await member.Client.JoinAsync(new JoinRequest { WorkerName = "member" });
        var layout = ParameterClient.ChunksOf(join);
        var weights = new float[join.ParameterCount];
        await member.PullAsync(join.WorkerId, 0, weights, layout, CancellationToken.None);
        var gradient = new float[join.ParameterCount];
        gradient.AsSpan().Fill(0.5f);
        var reply = await member.PushAsync(join.WorkerId, 1, 0, FloatBytes.AsBytes(gradient), layout, 1f, 64, CancellationToken.None);
        Assert.Equal("applied", reply.Outcome);
        var after = new float[join.ParameterCount];
        await member.PullAsync(join.WorkerId, 1, after, layout, CancellationToken.None);
        Assert.Equal(1, (await member.Client.StatusAsync(new StatusRequest())).Version);
        Assert.NotEqual(weights, after);

        // Another certificate's holder, the machine's authorities, and a client without TLS: nothing reaches the run.
        using var otherAuthority = ClusterTls.LoadAuthority(otherFile);
        using var misled = new ParameterClient(address, authority: otherAuthority);
        using var systemTrust = new ParameterClient(address);
        using var plain = new ParameterClient(address.Replace("https://", "http://", StringComparison.Ordinal));
        foreach (var stranger in new[] { misled, systemTrust })
        {
            var refused = await Assert.ThrowsAsync<RpcException>(() => stranger.Client.StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync);
            Assert.True(ClusterTls.HandshakeRefusal(refused.Status.DebugException) is not null, refused.Status.ToString());
        }
        await Assert.ThrowsAsync<RpcException>(() => plain.Client.StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync);
        Assert.Equal(1, (await member.Client.StatusAsync(new StatusRequest())).Version);
        await app.StopAsync();
    }

    [Fact]
    public void ACertificateForAnotherNameIsNotTrustedEvenByItsOwnAuthority()
    {
        using var scratch = new ScratchDirectory();
        var (certificateFile, keyFile) = TestCertificates.WriteSelfSigned(scratch, "elsewhere", "machine-b.example");
        using var presented = ClusterTls.LoadServerCertificate(certificateFile, keyFile);
        using var authority = ClusterTls.LoadAuthority(certificateFile);

        Assert.True(ClusterTls.Trusts(authority, presented, null, System.Net.Security.SslPolicyErrors.RemoteCertificateChainErrors));
        Assert.False(ClusterTls.Trusts(authority, presented, null, System.Net.Security.SslPolicyErrors.RemoteCertificateNameMismatch));
        Assert.False(ClusterTls.Trusts(authority, null, null, System.Net.Security.SslPolicyErrors.RemoteCertificateNotAvailable));
    }
}
