using Cluster.Training;
using Cluster.Wire;

namespace Cluster.Tests.Wire;

public sealed class ClusterTokenTests
{
    [Fact]
    public void ATokenFileGivesItsFirstLineTrimmed()
    {
        using var scratch = new ScratchDirectory();
        string path = scratch.File("token");
        File.WriteAllText(path, "  0123456789abcdef0123\nsecond line\n");
        Assert.Equal("0123456789abcdef0123", ClusterToken.Resolve(path));
    }

    [Theory]
    [InlineData("short", "at least 16")]
    [InlineData("", "at least 16")]
    [InlineData("0123456789 abcdef", "without spaces")]
    [InlineData("0123456789abcdéf0", "printable ASCII")]
    public void ABadTokenIsRefusedNamingTheFile(string content, string said)
    {
        using var scratch = new ScratchDirectory();
        string path = scratch.File("token");
        File.WriteAllText(path, content);
        var e = Assert.Throws<InvalidOptionException>(() => ClusterToken.Resolve(path));
        Assert.Contains($"--token-file '{path}'", e.Message);
        Assert.Contains(said, e.Message);
    }

    [Fact]
    public void AMissingTokenFileIsNamed()
    {
        var e = Assert.Throws<InvalidOptionException>(() => ClusterToken.Resolve("/no/such/token"));
        Assert.Contains("--token-file '/no/such/token': cannot read it", e.Message);
    }

    [Fact]
    public void GeneratedTokensAreLongEnoughAndDiffer()
    {
        string a = ClusterToken.Generate(), b = ClusterToken.Generate();
        Assert.Equal(32, a.Length);
        Assert.True(a.All(Uri.IsHexDigit));
        Assert.NotEqual(a, b);
    }

    [Fact]
    public void OnlyTheSameTokenMatches()
    {
        const string token = "0123456789abcdef0123456789abcdef";
        Assert.True(ClusterToken.Matches(token, token));
        Assert.False(ClusterToken.Matches(null, token));
        Assert.False(ClusterToken.Matches("", token));
        Assert.False(ClusterToken.Matches(token[..^1], token));
        Assert.False(ClusterToken.Matches(token[..^1] + "0", token));
    }
}
