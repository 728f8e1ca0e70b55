using System.Diagnostics;

namespace Cluster.Launcher.Commands;

/// <summary>
/// The processes a local cluster starts: this same program run as <c>cluster server</c> and
/// <c>cluster worker</c>, each logging to its own file. Whatever happens, <see cref="Dispose"/>
/// kills every one still running, so a run never leaves orphans.
/// </summary>
internal sealed class ChildProcesses : IDisposable
{
    private readonly List<(string Name, Process Process, StreamWriter Log)> _children = [];
    private readonly string logDirectory;
    private readonly EventHandler _onExit;
    private readonly IReadOnlyDictionary<string, string> _environment;

    /// <summary>
    /// Prepares to start children logging into <paramref name="logs"/>, with <paramref name="environment"/>
    /// added to this process's own; they are killed if this process exits first.
    /// </summary>
    public ChildProcesses(string logs, IReadOnlyDictionary<string, string>? environment = null)
    {
        logDirectory = logs;
        _environment = environment ?? new Dictionary<string, string>();
        // NOTE: also on SIGTERM or an unhandled exception, not only on a normal dispose.
        _onExit = (_, _) => Dispose();
        AppDomain.CurrentDomain.ProcessExit += _onExit;
    }

    /// <summary>Where each child's output goes.</summary>
    public string LogDirectory => logDirectory;

    /// <summary>Starts <c>cluster ARGS</c> as a child named <paramref name="name"/>.</summary>
    public Process Start(string name, IEnumerable<string> args)
    {
        var start = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        string? self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "cluster")
        {
            start.FileName = self;
        }
        else
        {
            // Running as `dotnet cluster.dll` (or inside a test host): start the same assembly through dotnet.
            start.FileName = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH")
                ?? (self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "dotnet");
            start.ArgumentList.Add(typeof(Cli).Assembly.Location);
        }
        foreach (string a in args)
        {
            start.ArgumentList.Add(a);
        }
        foreach (var (key, value) in _environment)
        {
            start.Environment[key] = value;
        }
        var log = new StreamWriter(Path.Combine(logDirectory, name + ".log")) { AutoFlush = true };
        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Write(log, e.Data);
        process.ErrorDataReceived += (_, e) => Write(log, e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        lock (_children)
        {
            _children.Add((name, process, log));
        }
        return process;
    }

    private static void Write(StreamWriter log, string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (log)
        {
            try
            {
                log.WriteLine(line);
            }
            catch (ObjectDisposedException)
            {
                // A last line after the log was closed at shutdown.
            }
        }
    }

    /// <summary>The children started so far.</summary>
    public IReadOnlyList<(string Name, Process Process)> All
    {
        get
        {
            lock (_children)
            {
                return [.. _children.Select(c => (c.Name, c.Process))];
            }
        }
    }

    /// <summary>The last lines a child wrote.</summary>
    public string Tail(string name, int lines = 8)
    {
        string path = Path.Combine(logDirectory, name + ".log");
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(stream);
            var all = reader.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            return string.Join('\n', all.TakeLast(lines));
        }
        catch (IOException)
        {
            return "";
        }
    }

    /// <summary>Waits up to <paramref name="timeout"/> for every child to exit; true if all did.</summary>
    public async Task<bool> WaitAllAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await Task.WhenAll(All.Select(c => c.Process.WaitForExitAsync(cts.Token))).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Kills every child still running (with its own children) and closes the logs.</summary>
    public void Dispose()
    {
        AppDomain.CurrentDomain.ProcessExit -= _onExit;
        lock (_children)
        {
            foreach (var (_, process, log) in _children)
            {
                try
                {
                    if (!process.HasExited)
                    {
                        process.Kill(entireProcessTree: true);
                        process.WaitForExit(5000);
                    }
                }
                catch (InvalidOperationException)
                {
                    // Already gone.
                }
                process.WaitForExit(1000);
                process.Dispose();
                lock (log)
                {
                    log.Dispose();
                }
            }
            _children.Clear();
        }
    }
}
