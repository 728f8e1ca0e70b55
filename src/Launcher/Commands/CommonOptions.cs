using System.CommandLine;
using Cluster.Training;
using Cluster.Wire;

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

    /// <summary><c>--server URL</c> of a command that talks to a running parameter server.</summary>
    public static Option<string> Server() => new("--server")
    {
        Description = "the parameter server, e.g. http://machineA:5000",
        Required = true,
    };

    /// <summary>The value of <see cref="Server"/>, checked: an http or https address, else <see cref="InvalidOptionException"/>.</summary>
    public static string ServerAddress(ParseResult parse, Option<string> server)
    {
        string address = parse.GetValue(server)!;
        if (!Uri.TryCreate(address, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
        {
            throw new InvalidOptionException($"--server '{address}' is not an address: use http://HOST:PORT, or https://HOST:PORT for a server with --tls-cert");
        }
        return address;
    }

    /// <summary><c>--tls-ca</c> of a command that calls a server over https.</summary>
    public static Option<string?> ClientTlsAuthority() => new("--tls-ca")
    {
        Description = "PEM certificate the https server's must chain to: a private authority's, or a self-signed server's own (default: the machine's authorities)",
    };

    /// <summary><c>--token-file</c> of a command that calls a server with a cluster token.</summary>
    public static Option<string?> ClientTokenFile() => new("--token-file")
    {
        Description = $"file whose first line is the server's cluster token (default: ${ClusterToken.EnvironmentVariable}, else none)",
    };
}
