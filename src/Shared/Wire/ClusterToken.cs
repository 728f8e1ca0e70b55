using System.Security.Cryptography;
using System.Text;
using Cluster.Training;

namespace Cluster.Wire;

/// <summary>
/// The shared secret every call to a parameter server carries, in the <see cref="HeaderName"/>
/// header: a server started with a token answers any call without it, or with another one,
/// Unauthenticated before the call touches the run. It is read from a file (<c>--token-file</c>) or
/// from the <see cref="EnvironmentVariable"/> variable, never from a flag's value, which anyone on
/// the machine can read in the process list. Without TLS it keeps out strangers and a worker of
/// another run that reaches the wrong port, not an eavesdropper on the network.
/// </summary>
public static class ClusterToken
{
    /// <summary>The gRPC metadata key (HTTP/2 header) that carries the token.</summary>
    public const string HeaderName = "cluster-token";

    /// <summary>The environment variable a server or worker reads its token from when no file is given.</summary>
    public const string EnvironmentVariable = "CLUSTER_TOKEN";

    /// <summary>Shortest token accepted, in characters.</summary>
    public const int MinLength = 16;

    /// <summary>
    /// The token from <paramref name="tokenFile"/> (its first line) if given, else from
    /// <see cref="EnvironmentVariable"/>, else null (no token). A missing or unreadable file, or a
    /// token that is too short or not printable ASCII, is an <see cref="InvalidOptionException"/>.
    /// </summary>
    public static string? Resolve(string? tokenFile)
    {
        string? token;
        string source;
        if (tokenFile is not null)
        {
            source = $"--token-file '{tokenFile}'";
            try
            {
                token = File.ReadLines(tokenFile).FirstOrDefault()?.Trim() ?? "";
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new InvalidOptionException($"{source}: cannot read it ({e.Message.TrimEnd('.')})");
            }
        }
        else
        {
            token = Environment.GetEnvironmentVariable(EnvironmentVariable)?.Trim();
            source = EnvironmentVariable;
            if (string.IsNullOrEmpty(token))
            {
                return null;
            }
        }
        if (token.Length < MinLength || token.Any(c => c is < '!' or > '~'))
        {
            throw new InvalidOptionException($"{source}: the token must be at least {MinLength} printable ASCII characters without spaces (it has {token.Length} characters{(token.Any(c => c is < '!' or > '~') ? ", not all of them printable ASCII" : "")})");
        }
        return token;
    }

    /// <summary>A new random token: 128 bits as 32 hex digits.</summary>
    public static string Generate() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    /// <summary>Whether <paramref name="presented"/> is <paramref name="expected"/>, in time that does not depend on where they differ.</summary>
    public static bool Matches(string? presented, string expected) =>
        presented is not null && CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(presented), Encoding.ASCII.GetBytes(expected));
}
