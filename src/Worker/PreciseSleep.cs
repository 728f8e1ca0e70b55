using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Cluster.Worker;

/// <summary>
/// Sleeping until a moment, to the microsecond: the emulated forward/backward pass is a sleep of
/// a measured length (26–30 ms for lenet), and <see cref="Thread.Sleep(TimeSpan)"/> counts whole
/// milliseconds, cutting off the fraction, so each stage of an emulated pass could end up to a
/// millisecond (3 % of the pass) early, by a different amount at every worker count. On Linux the
/// thread sleeps in nanosleep for the exact remainder; elsewhere in whole milliseconds, rounded to
/// the nearest.
/// </summary>
internal static unsafe partial class PreciseSleep
{
    private const int Interrupted = 4; // EINTR

    /// <summary>Sleeps until <paramref name="ms"/> milliseconds after the <see cref="Stopwatch"/> timestamp <paramref name="start"/>; returns at once if that has passed.</summary>
    public static void Until(long start, double ms)
    {
        while (true)
        {
            double left = ms - Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            if (left <= 0)
            {
                return;
            }
            if (!OperatingSystem.IsLinux())
            {
                Thread.Sleep((int)Math.Round(left));
                return;
            }
            long nanoseconds = (long)(left * 1e6);
            var request = new TimeSpec { Seconds = nanoseconds / 1_000_000_000, Nanoseconds = nanoseconds % 1_000_000_000 };
            if (NanoSleep(&request, null) == 0 || Marshal.GetLastPInvokeError() != Interrupted)
            {
                return;
            }
            // A signal cut the sleep short: sleep again for what is left.
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "nanosleep", SetLastError = true)]
    private static partial int NanoSleep(TimeSpec* request, TimeSpec* remaining);
}
