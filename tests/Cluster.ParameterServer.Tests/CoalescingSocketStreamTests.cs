using System.Net;
using System.Net.Sockets;
using Cluster.Worker;

namespace Cluster.ParameterServer.Tests;

/// <summary>The worker's connection stream: gathered writes arrive whole and in order, a stalled peer holds writers back, and failures surface as IOException.</summary>
public sealed class CoalescingSocketStreamTests : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);

    public CoalescingSocketStreamTests() => _listener.Start();

    public void Dispose() => _listener.Stop();

    private async Task<(Stream Stream, Socket Peer)> ConnectAsync()
    {
        var accepting = _listener.AcceptSocketAsync();
        var stream = await CoalescingSocketStream.ConnectAsync(_listener.LocalEndpoint, CancellationToken.None);
        return (stream, await accepting.WaitAsync(Bound));
    }

    private static async Task<byte[]> ReceiveAsync(Socket peer, int length)
    {
        var received = new byte[length];
        for (int at = 0; at < length;)
        {
            int n = await peer.ReceiveAsync(received.AsMemory(at), SocketFlags.None).AsTask().WaitAsync(Bound);
            Assert.NotEqual(0, n);
            at += n;
        }
        return received;
    }

    [Fact]
    public async Task WritesOfEverySizeArriveWholeAndInOrder()
    {
        var (stream, peer) = await ConnectAsync();
        using var _ = peer;
        await using var __ = stream;
        var random = new Random(7);
        // Small frames, 16 KiB frames, and one write larger than a bulk burst and the queue's pause threshold.
        int[] sizes = [9, 13, 16_393, 16_393, 1, 32_768, CoalescingSocketStream.PauseBytes + 12_345, 100, 16_393];
        var sent = new byte[sizes.Sum()];
        random.NextBytes(sent);
        var receiving = ReceiveAsync(peer, sent.Length);
        int offset = 0;
        foreach (int size in sizes)
        {
            await stream.WriteAsync(sent.AsMemory(offset, size)).AsTask().WaitAsync(Bound);
            offset += size;
            if (size > CoalescingSocketStream.BulkBytes)
            {
                // A pause ends the burst: the next writes may go out at once again, never ahead of queued bytes.
                await Task.Delay(5);
            }
        }
        Assert.Equal(sent, await receiving);

        // Reads go straight to the socket.
        var reply = new byte[] { 1, 2, 3, 4, 5 };
        await peer.SendAsync(reply, SocketFlags.None);
        var read = new byte[16];
        int got = await stream.ReadAsync(read).AsTask().WaitAsync(Bound);
        Assert.Equal(reply, read[..got]);
    }

    [Fact]
    public async Task APeerThatStopsReadingHoldsTheWriterBackUntilItReadsAgain()
    {
        var (stream, peer) = await ConnectAsync();
        using var _ = peer;
        await using var __ = stream;
        // Far more than the queue and both sockets' buffers hold: the write must wait for the peer.
        var sent = new byte[64 * 1024 * 1024];
        new Random(3).NextBytes(sent);
        var writing = stream.WriteAsync(sent).AsTask();
        await Task.Delay(500);
        Assert.False(writing.IsCompleted, "a 64 MiB write completed while the peer read nothing: the queue is unbounded");

        var received = await ReceiveAsync(peer, sent.Length);
        await writing.WaitAsync(Bound);
        Assert.Equal(sent, received);
    }

    [Fact]
    public async Task WritingToAConnectionThePeerResetFailsWithIOException()
    {
        var (stream, peer) = await ConnectAsync();
        await using var _ = stream;
        peer.LingerState = new LingerOption(true, 0);
        peer.Dispose();
        var block = new byte[1024 * 1024];
        var failure = await Assert.ThrowsAsync<IOException>(async () =>
        {
            // The first writes may still be queued before the reset is seen; a bounded number must fail.
            for (int i = 0; i < 1000; i++)
            {
                await stream.WriteAsync(block).AsTask().WaitAsync(Bound);
                await Task.Delay(1);
            }
        });
        Assert.Contains("parameter server", failure.Message);
    }

    [Fact]
    public async Task DisposingEndsAPendingRead()
    {
        var (stream, peer) = await ConnectAsync();
        using var _ = peer;
        var reading = stream.ReadAsync(new byte[16]).AsTask();
        await Task.Delay(100);
        Assert.False(reading.IsCompleted);
        await stream.DisposeAsync();
        // The HTTP/2 client's read loop must end when it disposes the stream: with 0 bytes or an error, promptly.
        var ended = await Task.WhenAny(reading, Task.Delay(Bound));
        Assert.Same(reading, ended);
        if (reading.IsCompletedSuccessfully)
        {
            Assert.Equal(0, await reading);
        }
    }
}
