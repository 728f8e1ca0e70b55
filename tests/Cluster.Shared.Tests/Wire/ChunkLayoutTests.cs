using Cluster.Models;
using Cluster.Wire;

namespace Cluster.Tests.Wire;

public sealed class ChunkLayoutTests
{
    [Fact]
    public void LenetIsCutBetweenItsConvolutionsAndItsDenseLayers()
    {
        var model = new Sequential(ModelPresets.Resolve("lenet"));
        var layout = ChunkLayout.ForTensors(model.NamedParameters, model.ParameterCount, 64 * 1024);

        // conv1 + conv2 (18,816 floats) alone in chunk 0: the last to be final in backward and the
        // first needed in forward. dense1's weights (204,800) in pieces from their end, then the rest.
        int[] expected = [0, 18_816, 27_008, 92_544, 158_080, 223_616, 225_034];
        Assert.Equal(expected.Length - 1, layout.Count);
        for (int i = 0; i < layout.Count; i++)
        {
            Assert.Equal((expected[i], expected[i + 1] - expected[i]), layout[i]);
        }
        Assert.Equal(0, layout.IndexOf(18_815));
        Assert.Equal(1, layout.IndexOf(18_816));
        Assert.Equal(layout.Count - 1, layout.IndexOf(225_033));
    }

    [Theory]
    [InlineData("mlp", 1024)]
    [InlineData("resnet", 4096)]
    [InlineData("lstm", 16 * 1024)]
    [InlineData("gru", 1 << 22)]
    public void ChunksCoverTheVectorInOrderNoneLargerThanTheCapAndSplitOnlyTensorsLargerThanIt(string preset, int cap)
    {
        var model = new Sequential(ModelPresets.Resolve(preset));
        var layout = ChunkLayout.ForTensors(model.NamedParameters, model.ParameterCount, cap);
        var boundaries = new HashSet<int>(model.NamedParameters.Select(p => p.Offset)) { model.ParameterCount };
        int next = 0;
        for (int i = 0; i < layout.Count; i++)
        {
            var (offset, length) = layout[i];
            Assert.Equal(next, offset);
            Assert.InRange(length, 1, cap);
            next = offset + length;
            if (!boundaries.Contains(next))
            {
                // A cut inside a tensor: only a tensor larger than a chunk is cut.
                var cut = model.NamedParameters.Single(p => p.Offset < next && next < p.Offset + p.Length);
                Assert.True(cut.Length > cap, $"{cut.Name} ({cut.Length}) was cut at {next} with chunks of {cap}");
            }
        }
        Assert.Equal(model.ParameterCount, next);
    }
}
