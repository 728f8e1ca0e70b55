using Cluster.ParameterServer;
using Cluster.Wire;

namespace Cluster.ParameterServer.Tests;

/// <summary>The server's sum of the workers' time splits, from the running totals their pushes carry.</summary>
public sealed class TimeSplitLedgerTests
{
    private static TimeSplit Totals(double computeMs, long steps) => new() { ComputeMs = computeMs, PushMs = computeMs / 10, PullMs = computeMs / 5, WaitMs = 1, Steps = steps, Samples = steps * 64 };

    [Fact]
    public void EachWorkersFirstReportIsItsBaselineAndLaterOnesAddWhatTheyGrew()
    {
        var ledger = new TimeSplitLedger();
        // NOTE: a worker that outlived a server restart arrives with totals from before it.
        ledger.Report(0, Totals(5_000, 100));
        ledger.Report(1, Totals(0, 0));
        Assert.Equal(0, ledger.Snapshot().Steps);

        ledger.Report(0, Totals(5_030, 101));
        ledger.Report(1, Totals(28, 1));
        ledger.Report(0, Totals(5_061, 102));
        var sum = ledger.Snapshot();
        Assert.Equal((61 + 28, 3L, 3L * 64), (sum.ComputeMs, sum.Steps, sum.Samples));
        Assert.Equal(6.1 + 2.8, sum.PushMs, 9);
        Assert.Equal(0, sum.WaitMs);
    }

    [Fact]
    public void TotalsThatGoBackAreANewProcessCountingFromZero()
    {
        var ledger = new TimeSplitLedger();
        ledger.Report(2, Totals(1_000, 40));
        ledger.Report(2, Totals(1_100, 44));
        // The worker died; its replacement takes its id and reports from its own start.
        ledger.Report(2, Totals(50, 2));
        ledger.Report(2, Totals(75, 3));
        var sum = ledger.Snapshot();
        Assert.Equal((100 + 50 + 25, 4 + 2 + 1L), (sum.ComputeMs, sum.Steps));
    }

    [Fact]
    public void ASnapshotIsACopy()
    {
        var ledger = new TimeSplitLedger();
        ledger.Report(0, Totals(0, 0));
        ledger.Report(0, Totals(10, 1));
        var before = ledger.Snapshot();
        ledger.Report(0, Totals(20, 2));
        Assert.Equal(10, before.ComputeMs);
        Assert.Equal(10, ledger.Snapshot().Minus(before).ComputeMs);
    }
}
