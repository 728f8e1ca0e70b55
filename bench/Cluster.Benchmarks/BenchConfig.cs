using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace Cluster.Benchmarks;

/// <summary>Short jobs (this machine is shared and noisy: medians matter more than long runs) plus throughput columns.</summary>
public sealed class BenchConfig : ManualConfig
{
    public BenchConfig()
    {
        AddJob(Job.Default.WithWarmupCount(3).WithIterationCount(15));
        AddColumn(StatisticColumn.Median, new ThroughputColumn());
    }
}

/// <summary>GFLOP/s for GEMM rows, images/s for training-step rows, from the median time.</summary>
public sealed class ThroughputColumn : IColumn
{
    public string Id => nameof(ThroughputColumn);
    public string ColumnName => "Throughput";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "GFLOP/s (GEMM) or images/s (training step), from the median";
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var report = summary[benchmarkCase];
        if (report?.ResultStatistics is not { } stats)
        {
            return "-";
        }
        double seconds = stats.Median / 1e9;
        object? size = benchmarkCase.Parameters.Items.FirstOrDefault(p => p.Name == "Size")?.Value;
        return size is int n
            ? $"{2.0 * n * n * n / seconds / 1e9:F1} GFLOP/s"
            : $"{TrainingStepBenchmarks.Batch / seconds:F0} images/s";
    }
}
