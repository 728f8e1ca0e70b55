namespace Cluster.Launcher.Commands;

/// <summary>Files a command writes are written whole beside their place, then moved there: a run stopped halfway leaves the old file or the new one, never part of one.</summary>
internal static class AtomicFile
{
    /// <summary>Calls <paramref name="write"/> with a temporary path beside <paramref name="path"/>, then moves that file to <paramref name="path"/>.</summary>
    public static void Write(string path, Action<string> write)
    {
        string temp = path + ".tmp-" + Environment.ProcessId;
        try
        {
            write(temp);
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            File.Delete(temp);
        }
    }
}
