namespace Cluster.ParameterServer.Rules;

/// <summary>
/// Waiting for a condition over state guarded by one lock, asynchronously: a pull that the rule
/// holds back costs no thread. Whoever changes the state calls <see cref="NotifyAll"/>.
/// </summary>
internal sealed class AsyncCondition(object gate)
{
    private readonly List<TaskCompletionSource> _waiters = [];

    /// <summary>
    /// Returns once <paramref name="tryProceed"/>, evaluated under the lock, returns true. It may
    /// change state (take a lease) when it does.
    /// </summary>
    public async Task WaitAsync(Func<bool> tryProceed, CancellationToken cancel)
    {
        while (true)
        {
            Task wait;
            lock (gate)
            {
                if (tryProceed())
                {
                    return;
                }
                var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _waiters.Add(waiter);
                wait = waiter.Task;
            }
            await wait.WaitAsync(cancel).ConfigureAwait(false);
        }
    }

    /// <summary>Wakes every waiter to re-check its condition. Call with or without the lock held.</summary>
    public void NotifyAll()
    {
        TaskCompletionSource[] woken;
        lock (gate)
        {
            woken = [.. _waiters];
            _waiters.Clear();
        }
        foreach (var waiter in woken)
        {
            waiter.TrySetResult();
        }
    }
}
