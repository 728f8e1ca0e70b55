using System.Diagnostics;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Cluster.Worker;

/// <summary>
/// A worker's TCP connection to the parameter server as its HTTP/2 client sees it (handed over by
/// <see cref="System.Net.Http.SocketsHttpHandler.ConnectCallback"/>). The client writes a push
/// 16 KiB frame by frame and hands the socket at most 32 KiB at a time, so a 100 MiB push was
/// thousands of send calls, each of which runs the receiving side of loopback TCP and wakes the
/// server. Here a write only copies into a pipe; one send loop drains it, and whatever gathered
/// while a send was under way goes out in the next single send (as Kestrel's own socket transport
/// does). Only bulk transfers take that path: a write is sent at once, as the client's own socket
/// would send it, when nothing is queued and the burst of writes it belongs to has not passed
/// <see cref="BulkBytes"/>. A write waits only when <see cref="PauseBytes"/> are queued. Reads go
/// straight to the socket. Like any stream, one write at a time.
/// </summary>
public sealed class CoalescingSocketStream : Stream
{
    /// <summary>Bytes queued before a write waits for the socket.</summary>
    public const int PauseBytes = 4 * 1024 * 1024;

    private const int SegmentBytes = 256 * 1024;

    /// <summary>A burst of writes larger than this is a bulk transfer, which the send loop gathers.</summary>
    public const long BulkBytes = 2 * 1024 * 1024;

    /// <summary>A pause between writes longer than this ends a burst.</summary>
    private static readonly TimeSpan BurstGap = TimeSpan.FromMilliseconds(1);

    private readonly Socket _socket;
    private readonly Pipe _pipe = new(new PipeOptions(
        pauseWriterThreshold: PauseBytes,
        resumeWriterThreshold: PauseBytes / 2,
        minimumSegmentSize: SegmentBytes,
        useSynchronizationContext: false));

    private readonly List<ArraySegment<byte>> _gathered = [];

    /// <summary>Bytes written to the pipe and not yet sent.</summary>
    private long _unsent;

    /// <summary>Bytes written since the last pause of more than <see cref="BurstGap"/>.</summary>
    private long _burstBytes;

    private long _lastWrite;

    /// <summary>Takes over <paramref name="socket"/>, connected; disposing the stream closes it.</summary>
    public CoalescingSocketStream(Socket socket)
    {
        _socket = socket;
        _ = Task.Run(SendLoopAsync);
    }

    /// <summary>Connects to <paramref name="endPoint"/> with Nagle off (HTTP/2 frames are sent as they are ready).</summary>
    public static async ValueTask<Stream> ConnectAsync(System.Net.EndPoint endPoint, CancellationToken cancel)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endPoint, cancel).ConfigureAwait(false);
            return new CoalescingSocketStream(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private async Task SendLoopAsync()
    {
        var reader = _pipe.Reader;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync().ConfigureAwait(false);
                var queued = result.Buffer;
                if (!queued.IsEmpty)
                {
                    _gathered.Clear();
                    foreach (var segment in queued)
                    {
                        if (!MemoryMarshal.TryGetArray(segment, out var array))
                        {
                            throw new InvalidOperationException("the pipe's memory is not array-backed");
                        }
                        _gathered.Add(array);
                    }
                    // One sendmsg for everything queued: a stream socket's send completes when all of it is sent.
                    int sent = await _socket.SendAsync(_gathered, SocketFlags.None).ConfigureAwait(false);
                    if (sent != queued.Length)
                    {
                        throw new IOException($"the socket took {sent} of {queued.Length} queued bytes");
                    }
                }
                reader.AdvanceTo(queued.End);
                Interlocked.Add(ref _unsent, -queued.Length);
                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }
            await reader.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // The writer sees the failure on its next write, as it would have seen the socket's.
            await reader.CompleteAsync(e).ConfigureAwait(false);
        }
    }

    /// <inheritdoc/>
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        // NOTE: the HTTP/2 client writes from one loop, one write at a time. While nothing is
        // queued and the writes so far form less than a bulk transfer, a write goes out at once
        // from here: a pull request, a window update or a model of a few MB (a lenet push) is
        // cheaper sent directly than copied and handed to the send loop. It cannot overtake
        // queued bytes.
        long now = Stopwatch.GetTimestamp();
        if (Stopwatch.GetElapsedTime(_lastWrite, now) > BurstGap)
        {
            _burstBytes = 0;
        }
        _lastWrite = now;
        _burstBytes += buffer.Length;
        if (_burstBytes <= BulkBytes && Volatile.Read(ref _unsent) == 0)
        {
            try
            {
                await _socket.SendAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
                _lastWrite = Stopwatch.GetTimestamp();
                return;
            }
            catch (SocketException e)
            {
                throw Failed(e);
            }
        }
        Interlocked.Add(ref _unsent, buffer.Length);
        FlushResult result;
        try
        {
            result = await _pipe.Writer.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException and not IOException)
        {
            // The send loop's failure, handed on by the pipe.
            throw Failed(e);
        }
        if (result.IsCompleted)
        {
            throw new IOException("the connection to the parameter server is closed");
        }
    }

    private static IOException Failed(Exception e) => new($"the connection to the parameter server failed: {e.Message}", e);

    /// <inheritdoc/>
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc/>
    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer, offset, count).GetAwaiter().GetResult();

    /// <inheritdoc/>
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        _socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);

    /// <inheritdoc/>
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc/>
    public override int Read(byte[] buffer, int offset, int count) => _socket.Receive(buffer, offset, count, SocketFlags.None);

    /// <summary>Nothing to do: queued bytes are already on their way.</summary>
    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc/>
    public override void Flush()
    {
    }

    /// <inheritdoc/>
    public override bool CanRead => true;

    /// <inheritdoc/>
    public override bool CanWrite => true;

    /// <inheritdoc/>
    public override bool CanSeek => false;

    /// <inheritdoc/>
    public override long Length => throw new NotSupportedException();

    /// <inheritdoc/>
    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    /// <inheritdoc/>
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    /// <inheritdoc/>
    public override void SetLength(long value) => throw new NotSupportedException();

    /// <summary>
    /// Closes the socket at once: the HTTP/2 client disposes its stream only when it tears the
    /// connection down, and its read loop must end then rather than after queued bytes drain.
    /// </summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _pipe.Writer.Complete();
            _socket.Dispose();
        }
        base.Dispose(disposing);
    }
}
