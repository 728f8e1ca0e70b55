using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Cluster.Data;
using Cluster.ParameterServer;
using Cluster.Training;
using Cluster.Wire;
using Cluster.Worker;
using Google.Protobuf;
using Grpc.Net.Client;
using Grpc.Net.Client.Web;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cluster.Benchmarks;

/// <summary>
/// One way of moving weights and gradients over the wire. The defaults are what the parameter
/// server (<see cref="ParameterServerHost"/>) and the worker (<see cref="ParameterClient"/>) use.
/// </summary>
public sealed record WireSettings
{
    /// <summary>The row's name in the report.</summary>
    public string Name { get; init; } = "as shipped";

    /// <summary>True: the server from <see cref="ParameterServerHost.Build"/> and the worker's <see cref="ParameterClient"/>; false: this benchmark's copies of both, with the settings below.</summary>
    public bool Shipped { get; init; }

    /// <summary>Floats per chunk on the wire. Default as <see cref="ServerOptions.ChunkFloats"/> (65,536: 256 KiB).</summary>
    public int ChunkFloats { get; init; } = new ServerOptions().ChunkFloats;

    /// <summary>Kestrel's HTTP/2 stream window: how much of a push may be in flight.</summary>
    public int ServerStreamWindow { get; init; } = ParameterServerHost.StreamWindowBytes;

    /// <summary>Kestrel's HTTP/2 connection window.</summary>
    public int ServerConnectionWindow { get; init; } = ParameterServerHost.ConnectionWindowBytes;

    /// <summary>Largest HTTP/2 frame Kestrel accepts (what the worker may send in one DATA frame).</summary>
    public int MaxFrameSize { get; init; } = 1024 * 1024 - 1;

    /// <summary>Kestrel's response buffer per stream before writes wait; null for unbounded. Default 64 KiB, Kestrel's own.</summary>
    public long? MaxResponseBufferSize { get; init; } = 64 * 1024;

    /// <summary>Kestrel's socket transport waits for data before renting a read buffer (a zero-byte read first). Default true, Kestrel's own.</summary>
    public bool WaitForDataBeforeAllocatingBuffer { get; init; } = true;

    /// <summary>Kestrel runs the application's continuations on its I/O threads instead of the thread pool. Default false, Kestrel's own.</summary>
    public bool InlineScheduling { get; init; }

    /// <summary>Kestrel's memory pool block (and so socket read) size, or null for Kestrel's own 4 KiB pool.</summary>
    public int? KestrelBlockBytes { get; init; }

    /// <summary>The client's HTTP/2 stream window (at most 16 MiB in .NET): how much of a pull may be in flight.</summary>
    public int ClientStreamWindow { get; init; } = 16 * 1024 * 1024;

    /// <summary>Exchange streams (connections) a push is spread over. Default as <see cref="ServerOptions.PushLanes"/>.</summary>
    public int PushLanes { get; init; } = new ServerOptions().PushLanes;

    /// <summary>
    /// Pulls through gRPC-Web over HTTP/1.1 (a second endpoint of the server), which is not cut into
    /// 16 KiB HTTP/2 frames; pushes stay on HTTP/2, since gRPC-Web has no client streaming.
    /// </summary>
    public bool GrpcWebPull { get; init; }

    /// <summary>gRPC over TLS, as with <c>--tls-cert</c> on the server and <c>--tls-ca</c> on the worker (a certificate made for the run, which the client trusts alone).</summary>
    public bool Tls { get; init; }

    /// <summary>The shipped client's connections gather writes into large sends (<see cref="CoalescingSocketStream"/>); false: SocketsHttpHandler's own socket.</summary>
    public bool GatherWrites { get; init; } = true;
}

/// <summary>
/// Wire throughput on loopback (<c>quick wire [ROUNDS] [FILTER]</c>): 100 MiB sent over a bare TCP
/// socket, and a 100 MiB gradient pushed and 100 MiB of weights pulled through the parameter
/// server's real chunked gRPC streams (a server in this process in sync mode, a model of 26.2 M
/// parameters; the shipped client on its exchange streams, as a worker; a push is timed until the
/// server has applied it), as GiB/s and as a fraction of raw TCP; then the same with push lanes,
/// through the Pull and Push calls, and under other chunk sizes, HTTP/2 windows, frame sizes,
/// response buffers and socket settings (those on the calls, with a copy of the client). This machine's load drifts, so every round times a
/// raw TCP transfer, the shipped pull and push and the variant's pull and push back to back, and
/// the figures are medians over rounds; "× TCP" and "× shipped" are medians of the per-round ratios. All
/// settings at the default 7 rounds take about 2.5 minutes; a FILTER such as <c>"chunk|window"</c> picks some.
/// </summary>
public static class WireBenchmark
{
    /// <summary>One dense layer of 5120 × 5120 + 5120 = 26,219,520 parameters: 100.02 MiB as float32.</summary>
    private const string ModelSpecText = "input 1 1 5120\nflatten\ndense 5120\n";

    private const long Bytes = 26_219_520L * sizeof(float);

    private const double GiB = 1024.0 * 1024 * 1024;

    /// <summary>The settings compared with the shipped ones, one change at a time.</summary>
    public static IReadOnlyList<WireSettings> Variants { get; } =
    [
        new() { Name = "push lanes 2", PushLanes = 2, Shipped = true },
        new() { Name = "push lanes 3", PushLanes = 3, Shipped = true },
        new() { Name = "push lanes 4", PushLanes = 4, Shipped = true },
        new() { Name = "HTTP/2 client's own socket", GatherWrites = false, Shipped = true },
        new() { Name = "TLS (--tls-cert, --tls-ca)", Tls = true, Shipped = true },
        new() { Name = "Pull and Push calls (copy)" },
        new() { Name = "pull over gRPC-Web, HTTP/1.1", GrpcWebPull = true },
        new() { Name = "chunk 16 Ki floats (64 KiB)", ChunkFloats = 16 * 1024, Shipped = true },
        new() { Name = "chunk 64 Ki floats (256 KiB)", ChunkFloats = 64 * 1024, Shipped = true },
        new() { Name = "chunk 1 Mi floats (4 MiB)", ChunkFloats = 1024 * 1024, Shipped = true },
        new() { Name = "chunk 4 Mi floats (16 MiB)", ChunkFloats = 4 * 1024 * 1024, Shipped = true },
        new() { Name = "server windows 4 MiB / 8 MiB", ServerStreamWindow = 4 << 20, ServerConnectionWindow = 8 << 20 },
        new() { Name = "client stream window 4 MiB", ClientStreamWindow = 4 << 20 },
        new() { Name = "client stream window 1 MiB", ClientStreamWindow = 1 << 20 },
        new() { Name = "server windows 64 MiB / 128 MiB", ServerStreamWindow = 64 << 20, ServerConnectionWindow = 128 << 20 },
        new() { Name = "Kestrel MaxFrameSize 16 KiB", MaxFrameSize = 16 * 1024 },
        new() { Name = "Kestrel MaxFrameSize 16 MiB", MaxFrameSize = (16 << 20) - 1 },
        new() { Name = "response buffer 1 MiB", MaxResponseBufferSize = 1 << 20 },
        new() { Name = "response buffer unbounded", MaxResponseBufferSize = null },
        new() { Name = "no wait for data before reading", WaitForDataBeforeAllocatingBuffer = false },
        new() { Name = "inline scheduling", InlineScheduling = true },
        new() { Name = "Kestrel blocks 64 KiB", KestrelBlockBytes = 64 * 1024 },
        new() { Name = "Kestrel blocks 256 KiB", KestrelBlockBytes = 256 * 1024 },
        new() { Name = "Kestrel blocks 64 KiB + inline", KestrelBlockBytes = 64 * 1024, InlineScheduling = true },
        new()
        {
            Name = "buf 1 MiB + no wait + inline",
            MaxResponseBufferSize = 1 << 20,
            WaitForDataBeforeAllocatingBuffer = false,
            InlineScheduling = true,
        },
    ];

    /// <summary>
    /// Runs <paramref name="rounds"/> rounds for the shipped settings and each variant whose name
    /// contains one of the <c>|</c>-separated parts of <paramref name="filter"/> (all when empty), and prints the table.
    /// </summary>
    public static async Task RunAsync(int rounds, string filter = "")
    {
        string[] wanted = filter.Split('|');
        string specPath = Path.Combine(Path.GetTempPath(), $"cluster-wire-{Environment.ProcessId}.model");
        await File.WriteAllTextAsync(specPath, ModelSpecText).ConfigureAwait(false);
        try
        {
            var data = FashionMnist.LoadEmbedded();
            using var tcp = new TcpPair(1 << 20);
            using var tcpSmallReads = new TcpPair(4096);
            await using var bare = await BareHttp.StartAsync().ConfigureAwait(false);
            await using var shipped = await WireEndpoint.StartAsync(new WireSettings { Shipped = true }, specPath, data).ConfigureAwait(false);
            // NOTE: the first transfers of a process run the gRPC and Kestrel paths before the JIT has optimized them: warm up, untimed.
            await shipped.WarmUpAsync(12).ConfigureAwait(false);
            tcp.Transfer();
            tcpSmallReads.Transfer();
            await bare.GetAsync(HttpVersion.Version11).ConfigureAwait(false);
            await bare.GetAsync(HttpVersion.Version20).ConfigureAwait(false);

            var tcpTimes = new double[rounds];
            var http1 = new double[rounds];
            var http2 = new double[rounds];
            var smallTimes = new double[rounds];
            var pulls = new double[rounds];
            var pushes = new double[rounds];
            for (int r = 0; r < rounds; r++)
            {
                tcpTimes[r] = tcp.Transfer();
                smallTimes[r] = tcpSmallReads.Transfer();
                pulls[r] = await shipped.PullAsync().ConfigureAwait(false);
                pushes[r] = await shipped.PushAsync().ConfigureAwait(false);
                http1[r] = await bare.GetAsync(HttpVersion.Version11).ConfigureAwait(false);
                http2[r] = await bare.GetAsync(HttpVersion.Version20).ConfigureAwait(false);
            }
            double apply = shipped.MedianApplySeconds(rounds);
            double check = MedianCheckSeconds(rounds);
            Console.WriteLine($"{Bytes / (1024.0 * 1024):F2} MiB per transfer on 127.0.0.1, medians of {rounds} rounds");
            Console.WriteLine($"raw TCP: {Rate(tcpTimes):F2} GiB/s with 1 MiB reads ({Median([.. tcp.Cpu]) * 1e3:F0} CPU ms), "
                + $"{Rate(smallTimes):F2} GiB/s with 4 KiB reads (Kestrel's own read size; {Median([.. tcpSmallReads.Cpu]) * 1e3:F0} CPU ms)");
            Console.WriteLine($"the transport alone, no gRPC (a GET of the same bytes from Kestrel to HttpClient, 256 KiB writes, 1 MiB reads): "
                + $"HTTP/2 {Rate(http2):F2} GiB/s ({Median(PerRound(tcpTimes, http2)):P0} of raw TCP), HTTP/1.1 {Rate(http1):F2} GiB/s ({Median(PerRound(tcpTimes, http1)):P0})");
            Console.WriteLine($"inside each push, the server's own work: {check * 1e3:F1} ms copying the chunks into the gradient buffer and checking for NaN, "
                + $"{apply * 1e3:F1} ms for the update (SGD step and snapshot copy), which sync mode does chunk by chunk as the chunks arrive");
            Console.WriteLine();
            Console.WriteLine($"{"setting",-32} {"push GiB/s",10} {"× TCP",6} {"× shipped",9} {"pull GiB/s",10} {"× TCP",6} {"× shipped",9} {"TCP GiB/s",9} {"push CPU ms",11} {"pull CPU ms",11}");
            Console.WriteLine($"{"as shipped",-32} {Rate(pushes),10:F2} {Median(PerRound(tcpTimes, pushes)),6:P0} {1,9:F2} {Rate(pulls),10:F2} {Median(PerRound(tcpTimes, pulls)),6:P0} {1,9:F2} {Rate(tcpTimes),9:F2} "
                + $"{Median([.. shipped.PushCpu]) * 1e3,11:F0} {Median([.. shipped.PullCpu]) * 1e3,11:F0}");

            foreach (var settings in Variants.Where(v => wanted.Any(w => v.Name.Contains(w, StringComparison.OrdinalIgnoreCase))))
            {
                await using var variant = await WireEndpoint.StartAsync(settings, specPath, data).ConfigureAwait(false);
                await variant.WarmUpAsync(3).ConfigureAwait(false);
                var pushRatios = new double[rounds];
                var pullRatios = new double[rounds];
                for (int r = 0; r < rounds; r++)
                {
                    tcpTimes[r] = tcp.Transfer();
                    double basePull = await shipped.PullAsync().ConfigureAwait(false);
                    pulls[r] = await variant.PullAsync().ConfigureAwait(false);
                    double basePush = await shipped.PushAsync().ConfigureAwait(false);
                    pushes[r] = await variant.PushAsync().ConfigureAwait(false);
                    pullRatios[r] = basePull / pulls[r];
                    pushRatios[r] = basePush / pushes[r];
                }
                Console.WriteLine($"{settings.Name,-32} {Rate(pushes),10:F2} {Median(PerRound(tcpTimes, pushes)),6:P0} {Median(pushRatios),9:F2} "
                    + $"{Rate(pulls),10:F2} {Median(PerRound(tcpTimes, pulls)),6:P0} {Median(pullRatios),9:F2} {Rate(tcpTimes),9:F2} "
                    + $"{Median([.. variant.PushCpu]) * 1e3,11:F0} {Median([.. variant.PullCpu]) * 1e3,11:F0}");
            }
        }
        finally
        {
            File.Delete(specPath);
        }
    }

    /// <summary>
    /// For a profiler (<c>quick wire-loop push|pull N</c>): the shipped endpoint warmed up, then
    /// only pushes or only pulls, N of them, with the rate printed at the end, so that a profile
    /// of the whole process is a profile of one direction.
    /// </summary>
    public static async Task LoopAsync(string direction, int transfers)
    {
        if (direction is not ("push" or "pull"))
        {
            throw new ArgumentException($"wire-loop: direction '{direction}' is not push or pull");
        }
        string specPath = Path.Combine(Path.GetTempPath(), $"cluster-wire-{Environment.ProcessId}.model");
        await File.WriteAllTextAsync(specPath, ModelSpecText).ConfigureAwait(false);
        try
        {
            using var tcp = new TcpPair(1 << 20);
            await using var shipped = await WireEndpoint.StartAsync(new WireSettings { Shipped = true }, specPath, FashionMnist.LoadEmbedded()).ConfigureAwait(false);
            await shipped.WarmUpAsync(12).ConfigureAwait(false);
            tcp.Transfer();
            var times = new double[transfers];
            var tcpTimes = new double[transfers];
            for (int i = 0; i < transfers; i++)
            {
                tcpTimes[i] = tcp.Transfer();
                times[i] = direction == "push" ? await shipped.PushAsync().ConfigureAwait(false) : await shipped.PullAsync().ConfigureAwait(false);
            }
            var cpu = direction == "push" ? shipped.PushCpu : shipped.PullCpu;
            Console.WriteLine($"{direction}: {Rate(times):F2} GiB/s, {Median(PerRound(tcpTimes, times)):P0} of raw TCP ({Rate(tcpTimes):F2} GiB/s), "
                + $"{Median([.. cpu]) * 1e3:F0} CPU ms, medians of {transfers}");
        }
        finally
        {
            File.Delete(specPath);
        }
    }

    /// <summary>The median time of what the push handler does with the bytes itself: copy them into floats and check they are finite, in s.</summary>
    private static double MedianCheckSeconds(int runs)
    {
        var bytes = new byte[Bytes];
        var floats = new float[Bytes / sizeof(float)];
        var times = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            long start = Stopwatch.GetTimestamp();
            if (!FloatBytes.CopyFinite(bytes, floats))
            {
                throw new InvalidDataException("zeros are finite");
            }
            times[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
        return Median(times);
    }

    private static double Rate(double[] seconds) => Bytes / GiB / Median(seconds);

    /// <summary>Each round's rate against raw TCP in the same round: the machine's load drifts between rounds more than within one.</summary>
    private static double[] PerRound(double[] tcpSeconds, double[] seconds) => [.. tcpSeconds.Zip(seconds, (tcp, s) => tcp / s)];

    private static double Median(double[] values)
    {
        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }

    /// <summary>
    /// A server and a client with one <see cref="WireSettings"/>, joined as the only worker of a
    /// sync run. The shipped client moves weights and gradients on its exchange streams, as a worker
    /// does; the copy uses the Pull and Push calls.
    /// </summary>
    private sealed class WireEndpoint : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly ParameterClient? _shipped;
        private ExchangeSession? _exchange;
        private readonly ParameterStore _store;
        private readonly WireClient? _copy;
        private readonly JoinReply _join;
        private ChunkLayout? _chunks;
        private readonly float[] _weights;
        private readonly ReadOnlyMemory<byte> _gradient;
        private long _step;

        private WireEndpoint(WebApplication app, ParameterClient? shipped, WireClient? copy, JoinReply join)
        {
            _app = app;
            _shipped = shipped;
            _copy = copy;
            _join = join;
            _weights = new float[join.ParameterCount];
            _gradient = FloatBytes.AsBytes(new float[join.ParameterCount]);
            _store = app.Services.GetRequiredService<TrainingCoordinator>().Store;
        }

        public static async Task<WireEndpoint> StartAsync(WireSettings settings, string specPath, FashionMnist data)
        {
            var options = new ServerOptions
            {
                // NOTE: plain SGD keeps the server's update inside each push as cheap as it can be; its cost is measured and reported apart.
                Training = new TrainingOptions { Model = specPath, Data = "embedded", Epochs = 1, Optimizer = "sgd" },
                Workers = 1,
                // NOTE: the cluster's default mode: in sync mode the server updates each chunk as it arrives.
                Mode = "sync",
                Host = "127.0.0.1",
                Port = 0,
                ChunkFloats = settings.ChunkFloats,
                PushLanes = settings.PushLanes,
            };
            options.Validate();
            var certificate = settings.Tls ? RunCertificate.Value : null;
            var app = settings.Shipped ? ParameterServerHost.Build(options, data, certificate: certificate) : BuildHost(options, data, settings);
            await app.StartAsync().ConfigureAwait(false);
            string address = ParameterServerHost.ListeningAddress(app);
            int maxMessage = ParameterServerHost.MaxMessageBytes(settings.ChunkFloats);
            var shipped = settings.Shipped ? new ParameterClient(address, maxMessage, null, settings.GatherWrites, certificate) : null;
            // NOTE: the endpoints in the order they were bound: HTTP/2 first, then gRPC-Web's HTTP/1.1.
            string? webAddress = settings.GrpcWebPull ? app.Urls.ElementAt(1) : null;
            var copy = settings.Shipped ? null : new WireClient(address, maxMessage, settings.ClientStreamWindow, webAddress);
            var join = await (shipped?.Client ?? copy!.Client).JoinAsync(new JoinRequest { WorkerName = "wire-benchmark" }).ConfigureAwait(false);
            return new WireEndpoint(app, shipped, copy, join);
        }

        /// <summary>A self-signed certificate for 127.0.0.1, made once per benchmark run.</summary>
        private static readonly Lazy<X509Certificate2> RunCertificate = new(() =>
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256);
            var names = new SubjectAlternativeNameBuilder();
            names.AddIpAddress(IPAddress.Loopback);
            request.CertificateExtensions.Add(names.Build());
            return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        });

        public async Task WarmUpAsync(int transfers)
        {
            for (int i = 0; i < transfers; i++)
            {
                await PullAsync().ConfigureAwait(false);
                await PushAsync().ConfigureAwait(false);
            }
            PullCpu.Clear();
            PushCpu.Clear();
        }

        /// <summary>CPU seconds of this process (client and server together) for each timed pull.</summary>
        public List<double> PullCpu { get; } = [];

        /// <summary>CPU seconds of this process for each timed push.</summary>
        public List<double> PushCpu { get; } = [];

        /// <summary>Seconds of one pull of the whole model.</summary>
        public async Task<double> PullAsync()
        {
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            long start = Stopwatch.GetTimestamp();
            await (_shipped is not null
                ? Exchange().PullAsync(_join.WorkerId, 0, _weights, CancellationToken.None)
                : _copy!.PullAsync(_join.WorkerId, _weights)).ConfigureAwait(false);
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            PullCpu.Add((Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds);
            return seconds;
        }

        private ExchangeSession Exchange() =>
            _exchange ??= _shipped!.OpenExchange(_chunks ??= ParameterClient.ChunksOf(_join), CancellationToken.None, _join.Settings.PushLanes);

        /// <summary>
        /// Seconds of one push of a whole gradient (zeros) until the server has applied it (each
        /// chunk as it arrives, as sync mode does): the time until the store's version moves on,
        /// watched every millisecond.
        /// </summary>
        public async Task<double> PushAsync()
        {
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            long version = _store.Version;
            long start = Stopwatch.GetTimestamp();
            await (_shipped is not null
                ? Exchange().PushAsync(_join.WorkerId, _step++, version, _gradient, 0f, 1, CancellationToken.None)
                : _copy!.PushAsync(_join.WorkerId, _step++, version, _gradient, _join.ChunkFloats)).ConfigureAwait(false);
            while (_store.Version == version)
            {
                await Task.Delay(1).ConfigureAwait(false);
            }
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            PushCpu.Add((Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds);
            return seconds;
        }

        /// <summary>The median time of the server's update alone (optimizer step and snapshot copy), in s.</summary>
        public double MedianApplySeconds(int runs)
        {
            var store = _app.Services.GetRequiredService<TrainingCoordinator>().Store;
            var zeros = new float[store.Size];
            var times = new double[runs];
            for (int i = 0; i < runs; i++)
            {
                long start = Stopwatch.GetTimestamp();
                store.Apply(zeros);
                times[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
            }
            return Median(times);
        }

        public async ValueTask DisposeAsync()
        {
            if (_exchange is not null)
            {
                await _exchange.DisposeAsync().ConfigureAwait(false);
            }
            _shipped?.Dispose();
            _copy?.Dispose();
            await _app.StopAsync().ConfigureAwait(false);
            await _app.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// One loopback TCP connection with 4 MiB socket buffers: <see cref="Transfer"/> sends 100 MiB
    /// in 1 MiB writes and returns when the receiver, reading a given size at a time, acknowledges the last byte.
    /// </summary>
    private sealed class TcpPair : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly Socket _sender = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, SendBufferSize = 4 << 20 };
        private readonly Socket _receiver;
        private readonly Thread _reader;
        private readonly byte[] _block = new byte[1 << 20];

        public TcpPair(int readBytes)
        {
            _listener.Server.ReceiveBufferSize = 4 << 20;
            _listener.Start();
            _sender.Connect((IPEndPoint)_listener.LocalEndpoint);
            _receiver = _listener.AcceptSocket();
            _reader = new Thread(() => Receive(readBytes)) { IsBackground = true };
            _reader.Start();
        }

        private void Receive(int readBytes)
        {
            var buffer = new byte[readBytes];
            while (true)
            {
                for (long received = 0; received < Bytes;)
                {
                    int n = _receiver.Receive(buffer);
                    if (n == 0)
                    {
                        return;
                    }
                    received += n;
                }
                _receiver.Send([1]);
            }
        }

        /// <summary>Seconds of one transfer.</summary>
        public double Transfer()
        {
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            long start = Stopwatch.GetTimestamp();
            for (long sent = 0; sent < Bytes;)
            {
                sent += _sender.Send(_block.AsSpan(0, (int)Math.Min(_block.Length, Bytes - sent)));
            }
            _sender.Receive(_block.AsSpan(0, 1));
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            Cpu.Add((Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds);
            return seconds;
        }

        /// <summary>CPU seconds of this process (sender and receiver) for each transfer.</summary>
        public List<double> Cpu { get; } = [];

        public void Dispose()
        {
            _sender.Shutdown(SocketShutdown.Send);
            _reader.Join();
            _sender.Dispose();
            _receiver.Dispose();
            _listener.Stop();
            _listener.Dispose();
        }
    }

    /// <summary>
    /// The HTTP transport without gRPC, for a ceiling: Kestrel answering a GET with the same bytes
    /// in 256 KiB writes, on an HTTP/1.1 endpoint and an HTTP/2 one (windows as the server's), and
    /// HttpClient reading 1 MiB at a time. gRPC runs on HTTP/2; whatever HTTP/2 alone cannot reach,
    /// no gRPC setting can.
    /// </summary>
    private sealed class BareHttp : IAsyncDisposable
    {
        private static readonly byte[] Block = new byte[256 * 1024];
        private readonly WebApplication _app;
        private readonly HttpClient _client = new(new SocketsHttpHandler { InitialHttp2StreamWindowSize = ParameterServerHost.StreamWindowBytes });
        private readonly byte[] _read = new byte[1 << 20];

        private BareHttp(WebApplication app) => _app = app;

        public static async Task<BareHttp> StartAsync()
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.ConfigureKestrel(kestrel =>
            {
                kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Protocols = HttpProtocols.Http1);
                kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Protocols = HttpProtocols.Http2);
                kestrel.Limits.Http2.InitialStreamWindowSize = ParameterServerHost.StreamWindowBytes;
                kestrel.Limits.Http2.InitialConnectionWindowSize = ParameterServerHost.ConnectionWindowBytes;
                kestrel.Limits.MaxResponseBufferSize = null;
            });
            var app = builder.Build();
            app.MapGet("/bytes", async context =>
            {
                context.Response.ContentLength = Bytes;
                for (long sent = 0; sent < Bytes; sent += Block.Length)
                {
                    await context.Response.Body.WriteAsync(Block.AsMemory(0, (int)Math.Min(Block.Length, Bytes - sent))).ConfigureAwait(false);
                }
            });
            await app.StartAsync().ConfigureAwait(false);
            return new BareHttp(app);
        }

        /// <summary>Seconds of one GET of the 100 MiB over <paramref name="version"/>.</summary>
        public async Task<double> GetAsync(Version version)
        {
            // NOTE: the endpoints in the order they were bound: HTTP/1.1 first.
            var addresses = _app.Urls.ToArray();
            string address = version == HttpVersion.Version11 ? addresses[0] : addresses[1];
            long start = Stopwatch.GetTimestamp();
            using var request = new HttpRequestMessage(HttpMethod.Get, address + "/bytes") { Version = version, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
            using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
            await using var body = await response.Content.ReadAsStreamAsync().ConfigureAwait(false);
            long total = 0;
            for (int n; (n = await body.ReadAsync(_read).ConfigureAwait(false)) > 0;)
            {
                total += n;
            }
            if (total != Bytes)
            {
                throw new InvalidDataException($"GET over HTTP/{version}: {total} of {Bytes} bytes");
            }
            return Stopwatch.GetElapsedTime(start).TotalSeconds;
        }

        public async ValueTask DisposeAsync()
        {
            _client.Dispose();
            await _app.StopAsync().ConfigureAwait(false);
            await _app.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>A copy of <see cref="ParameterServerHost.Build"/> whose Kestrel limits come from <paramref name="settings"/>.</summary>
    private static WebApplication BuildHost(ServerOptions options, FashionMnist data, WireSettings settings)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseSockets(sockets =>
        {
            sockets.WaitForDataBeforeAllocatingBuffer = settings.WaitForDataBeforeAllocatingBuffer;
            sockets.UnsafePreferInlineScheduling = settings.InlineScheduling;
        });
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Protocols = HttpProtocols.Http2);
            if (settings.GrpcWebPull)
            {
                kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Protocols = HttpProtocols.Http1);
            }
            kestrel.Limits.Http2.InitialStreamWindowSize = settings.ServerStreamWindow;
            kestrel.Limits.Http2.InitialConnectionWindowSize = settings.ServerConnectionWindow;
            kestrel.Limits.Http2.MaxFrameSize = settings.MaxFrameSize;
            kestrel.Limits.MaxResponseBufferSize = settings.MaxResponseBufferSize;
            kestrel.Limits.MaxRequestBodySize = null;
            kestrel.Limits.MinRequestBodyDataRate = null;
        });
        if (settings.KestrelBlockBytes is int blockBytes)
        {
            builder.Services.AddSingleton<IMemoryPoolFactory<byte>>(new LargeBlockMemoryPoolFactory(blockBytes));
        }
        builder.Services.AddGrpc(grpc =>
        {
            grpc.MaxReceiveMessageSize = ParameterServerHost.MaxMessageBytes(options.ChunkFloats);
            grpc.MaxSendMessageSize = ParameterServerHost.MaxMessageBytes(options.ChunkFloats);
        });
        ParameterServerMethods.Register(builder.Services);
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(data);
        builder.Services.AddSingleton(sp => new TrainingCoordinator(options, data, sp.GetRequiredService<ILoggerFactory>().CreateLogger("cluster.server")));
        var app = builder.Build();
        if (settings.GrpcWebPull)
        {
            app.UseGrpcWeb(new GrpcWebOptions { DefaultEnabled = true });
        }
        app.MapGrpcService<ParameterServerService>();
        return app;
    }

    /// <summary>A copy of <see cref="ParameterClient"/>'s pull and push whose HTTP/2 stream window can be set.</summary>
    private sealed class WireClient : IDisposable
    {
        private readonly GrpcChannel _channel;
        private readonly GrpcChannel? _webChannel;
        private readonly Wire.ParameterServer.ParameterServerClient _pullClient;

        /// <param name="webAddress">With an address, pulls go there through gRPC-Web over HTTP/1.1.</param>
        public WireClient(string address, int maxMessageBytes, int streamWindow, string? webAddress = null)
        {
            var handler = new SocketsHttpHandler
            {
                InitialHttp2StreamWindowSize = streamWindow,
                EnableMultipleHttp2Connections = true,
                PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            };
            _channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions { HttpHandler = handler, MaxReceiveMessageSize = maxMessageBytes, MaxSendMessageSize = maxMessageBytes });
            Client = new Wire.ParameterServer.ParameterServerClient(_channel);
            _pullClient = Client;
            if (webAddress is not null)
            {
                var web = new GrpcWebHandler(GrpcWebMode.GrpcWeb, new SocketsHttpHandler { PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan });
                _webChannel = GrpcChannel.ForAddress(webAddress, new GrpcChannelOptions
                {
                    HttpHandler = web,
                    HttpVersion = HttpVersion.Version11,
                    HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact,
                    MaxReceiveMessageSize = maxMessageBytes,
                    MaxSendMessageSize = maxMessageBytes,
                });
                _pullClient = new Wire.ParameterServer.ParameterServerClient(_webChannel);
            }
        }

        public Wire.ParameterServer.ParameterServerClient Client { get; }

        public async Task PullAsync(int worker, float[] weights)
        {
            using var call = _pullClient.Pull(new PullRequest { WorkerId = worker });
            int offset = 0;
            while (await call.ResponseStream.MoveNext(CancellationToken.None).ConfigureAwait(false))
            {
                var chunk = call.ResponseStream.Current;
                FloatBytes.CopyTo(chunk.Data.Span, weights.AsSpan(offset));
                offset += chunk.Data.Length / sizeof(float);
            }
            if (offset != weights.Length)
            {
                throw new InvalidDataException($"pull: received {offset} of {weights.Length} floats");
            }
        }

        public async Task PushAsync(int worker, long step, long baseVersion, ReadOnlyMemory<byte> gradient, int chunkFloats)
        {
            using var call = Client.Push();
            int chunkBytes = chunkFloats * sizeof(float);
            int count = (gradient.Length + chunkBytes - 1) / chunkBytes;
            for (int i = 0; i < count; i++)
            {
                int offset = i * chunkBytes;
                await call.RequestStream.WriteAsync(new GradientChunk
                {
                    WorkerId = worker,
                    Step = step,
                    BaseVersion = baseVersion,
                    Index = i,
                    Count = count,
                    Data = UnsafeByteOperations.UnsafeWrap(gradient.Slice(offset, Math.Min(chunkBytes, gradient.Length - offset))),
                    Samples = i == 0 ? 1 : 0,
                }).ConfigureAwait(false);
            }
            await call.RequestStream.CompleteAsync().ConfigureAwait(false);
            await call.ResponseAsync.ConfigureAwait(false);
        }

        public void Dispose()
        {
            _webChannel?.Dispose();
            _channel.Dispose();
        }
    }
}
