using System.CommandLine;
using Cluster.Checkpoints;
using Cluster.Data;
using Cluster.Launcher.Commands;
using Cluster.Models;
using Cluster.Training;

namespace Cluster.Launcher;

/// <summary>
/// The <c>cluster</c> command line. Every error a user can cause (a bad flag, an unknown model, a
/// missing or corrupt file) ends as one line on stderr and exit code 2; success is 0.
/// </summary>
public static partial class Cli
{
    /// <summary>Exit code for bad input.</summary>
    public const int UsageError = 2;

    /// <summary>How long a command has to stop after Ctrl+C, SIGINT or SIGTERM before the process ends anyway.</summary>
    private static readonly TimeSpan TerminationGrace = TimeSpan.FromSeconds(20);

    /// <summary>Parses <paramref name="args"/> and runs the command.</summary>
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        var root = new RootCommand("Cluster: distributed data-parallel training of neural networks, with its own CPU engine.")
        {
            TrainCommand.Create(output),
            EvaluateCommand.Create(output),
            SummaryCommand.Create(output),
            ServerCommand.Create(output),
            WorkerCommand.Create(),
            StatusCommand.Create(output, error),
            LocalCommand.Create(output),
            BenchScalingCommand.Create(output),
            PlotCommand.Create(output),
        };
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var e in parse.Errors)
            {
                error.WriteLine($"error: {Readable(e.Message)}");
            }
            return UsageError;
        }
        try
        {
            // NOTE: asynchronous invocation, so that Ctrl+C, SIGINT and SIGTERM cancel the command's
            // token and the command stops what it started (local: every process of its cluster)
            // instead of the runtime killing this process and leaving its children running.
            var configuration = new InvocationConfiguration
            {
                Output = output,
                Error = error,
                EnableDefaultExceptionHandler = false,
                ProcessTerminationTimeout = TerminationGrace,
            };
            return parse.InvokeAsync(configuration).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is InvalidOptionException or ModelSpecException or DataFormatException or CheckpointException)
        {
            error.WriteLine($"error: {e.Message}");
            return UsageError;
        }
    }

    /// <summary>
    /// A parse error as a person reads it: System.CommandLine names the .NET type a value must
    /// parse as ("System.Nullable`1[System.Int32]"); this says what to give instead.
    /// </summary>
    internal static string Readable(string message) => ExpectedType().Replace(message, m => m.Groups["type"].Value switch
    {
        "Int32" or "Int64" => ": expected a whole number",
        "UInt64" or "UInt32" => ": expected a whole number, 0 or more",
        "Double" or "Single" => ": expected a number, such as 0.5",
        var other => $": expected a value of type {other}",
    });

    [System.Text.RegularExpressions.GeneratedRegex(@" as expected type 'System\.(?:Nullable`1\[System\.)?(?<type>\w+)\]?'")]
    private static partial System.Text.RegularExpressions.Regex ExpectedType();
}
