using Spectre.Console;

namespace Cluster.Launcher;

/// <summary>Spectre.Console consoles bound to a writer: live views on a terminal, plain text when redirected.</summary>
internal static class Terminal
{
    /// <summary>True when the process writes to an interactive terminal (not a file, pipe or test).</summary>
    public static bool IsInteractive(TextWriter output) =>
        output == Console.Out && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;

    /// <summary>A console that writes to <paramref name="output"/>.</summary>
    public static IAnsiConsole For(TextWriter output) => output == Console.Out
        ? AnsiConsole.Console
        : AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
}
