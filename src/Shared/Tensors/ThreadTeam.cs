using System.Runtime.ExceptionServices;

namespace Cluster.Tensors;

/// <summary>
/// A fixed team of compute threads that run one body on every member and wait for all of them.
/// <see cref="System.Threading.Tasks.Parallel"/> allocates and schedules through the shared pool
/// on every call; a training step makes dozens of such calls, so the engine keeps its own team
/// whose threads spin briefly and then sleep, and whose <see cref="Run"/> allocates nothing.
/// The calling thread is member 0. Calls from inside a body run inline on that one thread.
/// </summary>
public sealed class ThreadTeam : IDisposable
{
    private const int SpinIterations = 1000;

    [ThreadStatic]
    private static bool t_insideTeam;

    private readonly Thread[] _threads;
    private readonly ManualResetEventSlim[] _wake;
    private Action<int>? _body;
    private int _pending;
    private volatile bool _stopping;
    private ExceptionDispatchInfo? _failure;

    /// <summary>Creates a team of <paramref name="size"/> threads (the caller counts as one).</summary>
    public ThreadTeam(int size)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        Size = size;
        _threads = new Thread[size - 1];
        _wake = new ManualResetEventSlim[size - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            int member = i + 1;
            _wake[i] = new ManualResetEventSlim(false, spinCount: 200);
            _threads[i] = new Thread(() => Loop(member)) { IsBackground = true, Name = $"cluster-compute-{member}" };
            _threads[i].Start();
        }
    }

    /// <summary>A team of one: everything runs on the calling thread.</summary>
    public static ThreadTeam Single { get; } = new(1);

    /// <summary>Number of threads, the caller included.</summary>
    public int Size { get; }

    /// <summary>True on a thread that is running a team body; nested work then stays on that thread.</summary>
    public static bool IsInsideTeam => t_insideTeam;

    /// <summary>Number of members a call from the current thread would use.</summary>
    public int EffectiveSize => t_insideTeam ? 1 : Size;

    /// <summary>Scratch state that the GEMM driver keeps per team (so it allocates once).</summary>
    internal object? GemmState { get; set; }

    /// <summary>Scratch state of the dot-product GEMM path, kept per team.</summary>
    internal object? GemmDotState { get; set; }

    /// <summary>
    /// Runs <paramref name="body"/>(member) for member = 0 .. <see cref="Size"/>-1, one per thread,
    /// and returns when all are done. Pass a cached delegate to keep the call allocation-free.
    /// </summary>
    public void Run(Action<int> body)
    {
        if (Size == 1 || t_insideTeam)
        {
            for (int i = 0; i < EffectiveSize; i++)
            {
                body(i);
            }
            return;
        }
        _body = body;
        _failure = null;
        Volatile.Write(ref _pending, Size - 1);
        foreach (var wake in _wake)
        {
            wake.Set();
        }
        t_insideTeam = true;
        try
        {
            body(0);
        }
        catch (Exception e)
        {
            _failure ??= ExceptionDispatchInfo.Capture(e);
        }
        finally
        {
            t_insideTeam = false;
        }
        var spin = new SpinWait();
        while (Volatile.Read(ref _pending) != 0)
        {
            spin.SpinOnce(sleep1Threshold: -1);
        }
        _body = null;
        _failure?.Throw();
    }

    /// <summary>
    /// Splits [0, <paramref name="count"/>) into one contiguous range per member and runs
    /// <paramref name="body"/>(start, end) on each. Pass a cached delegate to avoid allocation.
    /// </summary>
    public void For(int count, Action<int, int> body)
    {
        int parts = Math.Min(EffectiveSize, count);
        if (parts <= 1)
        {
            if (count > 0)
            {
                body(0, count);
            }
            return;
        }
        _rangeBody = body;
        _rangeCount = count;
        _rangeParts = parts;
        Run(_runRange ??= RunRange);
    }

    private Action<int, int>? _rangeBody;
    private int _rangeCount;
    private int _rangeParts;
    private Action<int>? _runRange;

    private void RunRange(int member)
    {
        if (member >= _rangeParts)
        {
            return;
        }
        (int start, int end) = Partition(_rangeCount, _rangeParts, member);
        _rangeBody!(start, end);
    }

    /// <summary>The range of part <paramref name="part"/> when <paramref name="count"/> items are split into <paramref name="parts"/> near-equal parts.</summary>
    public static (int Start, int End) Partition(int count, int parts, int part)
    {
        int baseSize = count / parts, extra = count % parts;
        int start = part * baseSize + Math.Min(part, extra);
        return (start, start + baseSize + (part < extra ? 1 : 0));
    }

    private void Loop(int member)
    {
        var wake = _wake[member - 1];
        t_insideTeam = true;
        while (true)
        {
            // NOTE: spin first: the next call usually comes within microseconds during a step.
            for (int i = 0; i < SpinIterations && !wake.IsSet; i++)
            {
                Thread.SpinWait(20);
            }
            wake.Wait();
            wake.Reset();
            if (_stopping)
            {
                return;
            }
            try
            {
                _body!(member);
            }
            catch (Exception e)
            {
                _failure ??= ExceptionDispatchInfo.Capture(e);
            }
            Interlocked.Decrement(ref _pending);
        }
    }

    /// <summary>Stops the threads.</summary>
    public void Dispose()
    {
        if (this == Single)
        {
            return;
        }
        _stopping = true;
        foreach (var wake in _wake)
        {
            wake.Set();
        }
        foreach (var thread in _threads)
        {
            thread.Join();
        }
        foreach (var wake in _wake)
        {
            wake.Dispose();
        }
    }
}
