using Cluster.Checkpoints;

namespace Cluster.Tests.Checkpoints;

public sealed class CheckpointSaveTests : IDisposable
{
    private readonly ScratchDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void Saving_over_an_existing_checkpoint_replaces_it_and_leaves_no_temp_file()
    {
        string path = _directory.File("model.safetensors");
        Checkpoint.Save(path, CheckpointModels.Create("mlp", seed: 1));
        var newer = CheckpointModels.Create("lenet", seed: 2);

        Checkpoint.Save(path, newer);

        Assert.Equal(["model.safetensors"], _directory.Entries());
        Assert.Equal(CheckpointModels.Bits(newer.Parameters), CheckpointModels.Bits(Checkpoint.Load(path).Model.Parameters));
    }

    [Fact]
    public void Saving_into_a_missing_directory_throws_and_creates_nothing()
    {
        string path = Path.Combine(_directory.Path, "missing", "model.safetensors");

        var error = Assert.Throws<CheckpointException>(() => Checkpoint.Save(path, CheckpointModels.Create("mlp", seed: 1)));

        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.Contains("does not exist", error.Message, StringComparison.Ordinal);
        Assert.Empty(_directory.Entries());
    }

    [Fact]
    public void Saving_to_a_directory_throws_and_leaves_the_other_files_alone()
    {
        string old = _directory.File("old.safetensors");
        Checkpoint.Save(old, CheckpointModels.Create("mlp", seed: 1));
        byte[] oldBytes = File.ReadAllBytes(old);
        string target = _directory.File("target.safetensors");
        Directory.CreateDirectory(target);

        var error = Assert.Throws<CheckpointException>(() => Checkpoint.Save(target, CheckpointModels.Create("mlp", seed: 2)));

        Assert.Contains("is a directory", error.Message, StringComparison.Ordinal);
        Assert.Equal(["old.safetensors", "target.safetensors"], _directory.Entries());
        Assert.Empty(Directory.EnumerateFileSystemEntries(target));
        Assert.Equal(oldBytes, File.ReadAllBytes(old));
    }

    [Fact]
    public void A_failure_before_the_replace_keeps_the_old_file_and_removes_the_temp_file()
    {
        string path = _directory.File("model.safetensors");
        Checkpoint.Save(path, CheckpointModels.Create("mlp", seed: 1));
        byte[] oldBytes = File.ReadAllBytes(path);
        var newer = CheckpointModels.Create("mlp", seed: 2);
        string? temp = null;
        long tempLength = 0;

        var error = Assert.Throws<CheckpointException>(() => Checkpoint.Save(path, newer, null, beforeReplace: t =>
        {
            temp = t;
            tempLength = new FileInfo(t).Length;
            throw new IOException("simulated disk failure");
        }));

        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.Contains("simulated disk failure", error.Message, StringComparison.Ordinal);
        Assert.NotNull(temp);
        Assert.Equal(_directory.Path, Path.GetDirectoryName(temp));
        Assert.Equal(oldBytes.Length, tempLength);
        Assert.False(File.Exists(temp));
        Assert.Equal(["model.safetensors"], _directory.Entries());
        Assert.Equal(oldBytes, File.ReadAllBytes(path));
    }

    [Fact]
    public void A_crash_before_the_replace_keeps_the_old_file_and_removes_the_temp_file()
    {
        // Not an I/O error: it propagates as it is, but the cleanup is the same.
        string path = _directory.File("model.safetensors");
        Checkpoint.Save(path, CheckpointModels.Create("mlp", seed: 1));
        byte[] oldBytes = File.ReadAllBytes(path);

        Assert.Throws<InvalidOperationException>(() => Checkpoint.Save(path, CheckpointModels.Create("mlp", seed: 2), null,
            beforeReplace: _ => throw new InvalidOperationException("crash")));

        Assert.Equal(["model.safetensors"], _directory.Entries());
        Assert.Equal(oldBytes, File.ReadAllBytes(path));
    }
}
