using System.CommandLine;

namespace Cluster.Launcher.Commands;

/// <summary>Options several commands share, declared once.</summary>
internal static class CommonOptions
{
    public static Option<string?> Data() => new("--data")
    {
        Description = "Fashion-MNIST: 'embedded', or a directory of IDX files (default: /usr/share/datasets/fashion-mnist when installed, else the embedded subset)",
    };

    public static Option<int> Threads() => new("--threads")
    {
        Description = "compute threads",
        DefaultValueFactory = _ => Environment.ProcessorCount,
    };

    public static Option<string> Model() => new("--model")
    {
        Description = $"a preset ({string.Join(", ", Models.ModelPresets.Names)}) or the path of a model spec file",
        DefaultValueFactory = _ => "lenet",
    };
}
