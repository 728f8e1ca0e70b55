using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Cluster.Launcher.Commands;

namespace Cluster.Launcher.Tests;

/// <summary>Helpers for tests that start processes: free ports, a server started and awaited, the processes a process started, signals.</summary>
public sealed partial class LocalClusterTests
{
    /// <summary>A process's command line, its arguments separated by NUL as /proc gives them.</summary>
    internal static string CommandLine(int pid)
    {
        try
        {
            return "\0" + File.ReadAllText($"/proc/{pid}/cmdline");
        }
        catch (IOException)
        {
            return "";
        }
    }

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    /// <summary>The processes <paramref name="pid"/> started, from /proc.</summary>
    private static int[] ChildrenOf(int pid) =>
        [.. Directory.GetDirectories($"/proc/{pid}/task")
            .SelectMany(task => File.Exists(Path.Combine(task, "children")) ? File.ReadAllText(Path.Combine(task, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries) : [])
            .Select(int.Parse).Distinct()];

    internal static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    /// <summary>
    /// Starts <c>cluster server ARGS</c> on a free loopback port and waits until it answers (over
    /// https, trusting <paramref name="tlsAuthority"/>, when given); returns the process and its address.
    /// </summary>
    private static async Task<(Process Server, string Address)> StartServerAsync(ChildProcesses children, string name, string[] args, string? token = null, string? tlsAuthority = null)
    {
        string port = FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture);
        string address = $"{(tlsAuthority is null ? "http" : "https")}://127.0.0.1:{port}";
        var server = children.Start(name, ["server", "--host", "127.0.0.1", "--port", port, .. args]);
        using var authority = tlsAuthority is null ? null : Cluster.Wire.ClusterTls.LoadAuthority(tlsAuthority);
        using var client = new Cluster.Worker.ParameterClient(address, token: token, authority: authority);
        await WaitUntilListeningAsync(client, server);
        return (server, address);
    }

    private static async Task WaitUntilListeningAsync(Cluster.Worker.ParameterClient client, Process server)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                await client.Client.StatusAsync(new Cluster.Wire.StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(2));
                return;
            }
            catch (Grpc.Core.RpcException) when (clock.Elapsed < TimeSpan.FromSeconds(60) && !server.HasExited)
            {
                await Task.Delay(100);
            }
        }
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
