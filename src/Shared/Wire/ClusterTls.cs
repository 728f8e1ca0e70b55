using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Cluster.Training;

namespace Cluster.Wire;

/// <summary>
/// TLS between workers and a parameter server on other machines: the server presents a
/// certificate and its key from PEM files (<c>--tls-cert</c>, <c>--tls-key</c>) and speaks HTTP/2
/// over TLS; a worker reaches it at an <c>https://</c> address and trusts either the machine's
/// certificate authorities or the one certificate given with <c>--tls-ca</c> (a private
/// authority's, or a self-signed server's own), against which the server's chain must build and
/// whose name must match the address. With the cluster token, a network eavesdropper can neither
/// read the weights nor learn the token.
/// </summary>
public static class ClusterTls
{
    /// <summary>
    /// The server's certificate with its private key, from PEM files; a file that is missing,
    /// unreadable, not PEM, or a key that does not match the certificate is an <see cref="InvalidOptionException"/>
    /// naming the file.
    /// </summary>
    public static X509Certificate2 LoadServerCertificate(string certificateFile, string keyFile)
    {
        RequireReadable("--tls-cert", certificateFile);
        RequireReadable("--tls-key", keyFile);
        try
        {
            return X509Certificate2.CreateFromPemFile(certificateFile, keyFile);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException or IOException or UnauthorizedAccessException)
        {
            throw new InvalidOptionException($"--tls-cert '{certificateFile}' with --tls-key '{keyFile}': not a PEM certificate and its matching private key ({e.Message.TrimEnd('.')})");
        }
    }

    /// <summary>The certificate a client trusts the server's by (<c>--tls-ca</c>), from a PEM file; else an <see cref="InvalidOptionException"/> naming it.</summary>
    public static X509Certificate2 LoadAuthority(string file)
    {
        RequireReadable("--tls-ca", file);
        try
        {
            return X509Certificate2.CreateFromPem(File.ReadAllText(file));
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException or IOException or UnauthorizedAccessException)
        {
            throw new InvalidOptionException($"--tls-ca '{file}': not a PEM certificate ({e.Message.TrimEnd('.')})");
        }
    }

    /// <summary>
    /// Whether a client that trusts <paramref name="authority"/> alone accepts the certificate the
    /// server <paramref name="presented"/>: its name matches the address, and its chain builds to
    /// <paramref name="authority"/> (which may be the certificate itself).
    /// </summary>
    public static bool Trusts(X509Certificate2 authority, X509Certificate? presented, X509Chain? presentedChain, SslPolicyErrors errors)
    {
        if (presented is not X509Certificate2 leaf || (errors & (SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable)) != 0)
        {
            return false;
        }
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (presentedChain is not null)
        {
            // Intermediates the server sent along, so that a chain through them can build.
            foreach (var element in presentedChain.ChainElements)
            {
                chain.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }
        return chain.Build(leaf);
    }

    /// <summary>The TLS handshake's refusal behind a failed call (<paramref name="failure"/>, its debug exception), if that is why it failed.</summary>
    public static AuthenticationException? HandshakeRefusal(Exception? failure) => Cause<AuthenticationException>(failure);

    /// <summary>The first exception of type <typeparamref name="T"/> (and matching <paramref name="matches"/>, if given) in <paramref name="failure"/>'s chain of inner exceptions.</summary>
    public static T? Cause<T>(Exception? failure, Func<T, bool>? matches = null)
        where T : Exception
    {
        for (var inner = failure; inner is not null; inner = inner.InnerException)
        {
            if (inner is T cause && (matches is null || matches(cause)))
            {
                return cause;
            }
        }
        return null;
    }

    private static void RequireReadable(string flag, string file)
    {
        if (!File.Exists(file))
        {
            throw new InvalidOptionException($"{flag} '{file}': no such file");
        }
    }
}
