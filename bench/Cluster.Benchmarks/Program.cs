using BenchmarkDotNet.Running;
using Cluster.Benchmarks;

if (args.Length > 1 && args[0] == "quick" && args[1] == "layers")
{
    LayerProfile.Run(args.Length > 2 ? args[2] : "lenet", args.Length > 3 ? int.Parse(args[3]) : 1);
    return;
}
if (args.Length > 1 && args[0] == "quick" && args[1] == "shapes")
{
    ShapeProfile.Run(args.Length > 2 ? int.Parse(args[2]) : 1);
    return;
}
if (args.Length > 1 && args[0] == "quick" && args[1] == "conv")
{
    ConvProfile.Run(args.Length > 2 ? int.Parse(args[2]) : 1);
    return;
}
if (args.Length > 1 && args[0] == "quick" && args[1] == "gemm")
{
    QuickBench.Gemm(args.Length > 2 ? int.Parse(args[2]) : 512, args.Length > 3 ? int.Parse(args[3]) : 1);
    return;
}
if (args.Length > 1 && args[0] == "quick" && args[1] == "wire")
{
    await WireBenchmark.RunAsync(args.Length > 2 ? int.Parse(args[2]) : 7, args.Length > 3 ? args[3] : "").ConfigureAwait(false);
    return;
}
if (args.Length > 3 && args[0] == "quick" && args[1] == "wire-loop")
{
    await WireBenchmark.LoopAsync(args[2], int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture)).ConfigureAwait(false);
    return;
}
if (args.Length > 1 && args[0] == "quick" && args[1] == "rtt")
{
    await StepLatencyBenchmark.RunAsync(args.Length > 2 ? args[2] : "lenet", args.Length > 3 ? int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture) : 256 * 1024);
    return;
}
if (args.Length > 1 && args[0] == "quick" && args[1] == "step")
{
    QuickBench.Step(args.Length > 2 ? args[2] : "lenet", args.Length > 3 ? int.Parse(args[3]) : 1);
    return;
}
if (args.Length > 0 && args[0] == "quick")
{
    QuickBench.Run();
    return;
}
BenchmarkSwitcher.FromAssembly(typeof(GemmBenchmarks).Assembly).Run(args);
