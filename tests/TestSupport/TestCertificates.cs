using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Cluster.Tests;

/// <summary>Certificates made on the spot for TLS tests on loopback, written as the PEM files the command line takes.</summary>
internal static class TestCertificates
{
    /// <summary>
    /// A self-signed certificate for 127.0.0.1 and localhost (or <paramref name="names"/>), valid
    /// for a day, and its key, written to NAME.crt and NAME.key in <paramref name="directory"/>.
    /// </summary>
    public static (string Certificate, string Key) WriteSelfSigned(ScratchDirectory directory, string name, params string[] names)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        var alternative = new SubjectAlternativeNameBuilder();
        if (names.Length == 0)
        {
            alternative.AddIpAddress(IPAddress.Loopback);
            alternative.AddDnsName("localhost");
        }
        foreach (string dns in names)
        {
            alternative.AddDnsName(dns);
        }
        request.CertificateExtensions.Add(alternative.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        string certificateFile = directory.File($"{name}.crt");
        string keyFile = directory.File($"{name}.key");
        File.WriteAllText(certificateFile, certificate.ExportCertificatePem());
        File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem());
        return (certificateFile, keyFile);
    }
}
