using System.Diagnostics;
using System.Globalization;
using Cluster.ParameterServer;
using Cluster.Wire;
using Cluster.Worker;
using Grpc.Core;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Cluster.Launcher.Commands;

/// <summary>
/// One view of a whole running cluster, from the server's status: global step, progress, images/s
/// overall and per worker, each worker's time split, the loss and the test accuracy after each
/// epoch. Live on a terminal; plain lines (one per epoch) when redirected.
/// </summary>
internal sealed class ClusterView(TextWriter output, ServerOptions options, bool live, bool quiet)
{
    private int _lastEpochShown;

    /// <summary>Polls the server until it exits; returns the last status it gave.</summary>
    public async Task<StatusReply?> FollowAsync(ParameterClient client, Process server, CancellationToken cancel)
    {
        StatusReply? last = null;
        if (live)
        {
            await AnsiConsole.Live(new Text("waiting for the workers...")).AutoClear(false).StartAsync(async context =>
            {
                await foreach (var status in PollAsync(client, server, cancel).ConfigureAwait(false))
                {
                    last = status;
                    context.UpdateTarget(Render(status));
                }
            }).ConfigureAwait(false);
        }
        else
        {
            await foreach (var status in PollAsync(client, server, cancel).ConfigureAwait(false))
            {
                last = status;
                PrintNewEpochs(status);
            }
        }
        // A server that died has no summary to give: the launcher says what happened to it.
        if (last is { Finished: true } && !quiet)
        {
            PrintSummary(last);
        }
        return last;
    }

    private static async IAsyncEnumerable<StatusReply> PollAsync(ParameterClient client, Process server, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancel)
    {
        while (!server.HasExited)
        {
            cancel.ThrowIfCancellationRequested();
            StatusReply? status = null;
            try
            {
                status = await client.Client.StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: cancel).ConfigureAwait(false);
            }
            catch (RpcException) when (!cancel.IsCancellationRequested)
            {
                // The server is shutting down.
            }
            catch (RpcException e) when (cancel.IsCancellationRequested)
            {
                // NOTE: gRPC reports a call cancelled under it (Ctrl+C during a poll) as an RpcException;
                // the caller stops on cancellation.
                throw new OperationCanceledException("stopped while asking the server for its status", e, cancel);
            }
            if (status is not null)
            {
                yield return status;
            }
            try
            {
                await Task.WhenAny(server.WaitForExitAsync(cancel), Task.Delay(500, cancel)).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                throw;
            }
        }
        cancel.ThrowIfCancellationRequested();
    }

    private void PrintNewEpochs(StatusReply status)
    {
        // NOTE: by number, not count: a server started again from its checkpoint reports only the epochs after it.
        foreach (var e in status.Epochs.Where(e => e.Epoch > _lastEpochShown).OrderBy(e => e.Epoch))
        {
            if (!quiet)
            {
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"epoch {e.Epoch}: train loss {e.TrainLoss:F4}, {Validation(e)}test loss {e.TestLoss:F4}, test accuracy {e.TestAccuracy:P2}, {e.ImagesPerSec:N0} images/s, {e.Seconds:F1} s; global step {GlobalStep(status):N0}"));
            }
            _lastEpochShown = e.Epoch;
        }
    }

    private Rows Render(StatusReply s) => Render(s, string.Create(CultureInfo.InvariantCulture,
        $"workers {options.Workers}{(options.BackupWorkers > 0 ? $"+{options.BackupWorkers}" : "")}"), $" of {options.Training.Epochs} epoch(s)");

    /// <summary>
    /// The view of <paramref name="s"/>: a header line, a progress bar, one row per worker (its
    /// time split and how late its gradients come on average, a straggler marked as one) and one per
    /// epoch evaluated. <paramref name="workers"/> and <paramref name="ofRun"/> say in the header
    /// what the run was started with, when the caller knows it.
    /// </summary>
    public static Rows Render(StatusReply s, string workers, string ofRun = "")
    {
        double progress = Progress(s);
        var header = new Markup(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
            $"mode {s.Mode}  {workers}  global step {GlobalStep(s):N0}  {progress:P0}{ofRun}  {s.ImagesPerSec:N0} images/s  loss {s.LastLoss:F4}  {s.Seconds:F0} s")));
        // Sync: how late each worker's gradients come; async and ssp: how stale they are when applied.
        bool sync = s.Mode == "sync";
        var table = new Table().AddColumns("worker", "pushes", "images/s", "compute", "push", "pull", "waiting", sync ? "late (avg)" : "staleness (avg)");
        foreach (var w in s.Workers)
        {
            var t = w.Time ?? new TimeSplit();
            double total = Math.Max(1e-9, t.TotalMs);
            table.AddRow(Markup.Escape(w.Name + (w.Active ? "" : " (left)") + (w.Straggler ? " (straggler)" : "")), w.Pushes.ToString("N0", CultureInfo.InvariantCulture), w.ImagesPerSec.ToString("N0", CultureInfo.InvariantCulture),
                (t.ComputeMs / total).ToString("P0", CultureInfo.InvariantCulture), (t.PushMs / total).ToString("P0", CultureInfo.InvariantCulture),
                (t.PullMs / total).ToString("P0", CultureInfo.InvariantCulture), (t.WaitMs / total).ToString("P0", CultureInfo.InvariantCulture),
                sync ? w.MeanLatenessMs.ToString("F1", CultureInfo.InvariantCulture) + " ms" : w.MeanStaleness.ToString("F2", CultureInfo.InvariantCulture));
        }
        bool validated = s.Epochs.Any(e => e.HasValidationAccuracy);
        var epochs = new Table().AddColumns(["epoch", "train loss", .. validated ? ["validation accuracy"] : Array.Empty<string>(), "test loss", "test accuracy", "images/s"]);
        foreach (var e in s.Epochs.OrderBy(e => e.Epoch))
        {
            string[] validation = validated ? [e.HasValidationAccuracy ? e.ValidationAccuracy.ToString("P2", CultureInfo.InvariantCulture) + (e.Epoch == s.BestEpoch ? " (best)" : "") : ""] : [];
            epochs.AddRow([e.Epoch.ToString(CultureInfo.InvariantCulture), e.TrainLoss.ToString("F4", CultureInfo.InvariantCulture), .. validation, e.TestLoss.ToString("F4", CultureInfo.InvariantCulture),
                e.TestAccuracy.ToString("P2", CultureInfo.InvariantCulture), e.ImagesPerSec.ToString("N0", CultureInfo.InvariantCulture)]);
        }
        return new Rows(header, new ProgressBar { Value = progress * 100, MaxValue = 100, Width = 60 }, table, epochs);
    }

    /// <summary>
    /// How far the run is, from 0 to 1: over all its epochs, so that a resumed run starts where its
    /// checkpoint left off rather than at 0.
    /// </summary>
    public static double Progress(StatusReply s)
    {
        double part = s.TotalSamples == 0 ? 0 : Math.Min(1, (double)s.Samples / s.TotalSamples);
        return s.TotalEpochs > 0 && s.StartEpoch > 0 ? (s.StartEpoch + part * (s.TotalEpochs - s.StartEpoch)) / s.TotalEpochs : part;
    }

    /// <summary>"validation accuracy …, " for an epoch evaluated on a validation split, else "".</summary>
    public static string Validation(EpochStatus e) =>
        e.HasValidationAccuracy ? string.Create(CultureInfo.InvariantCulture, $"validation accuracy {e.ValidationAccuracy:P2}, ") : "";

    /// <summary>With early stopping, which epoch's weights the run keeps and why; else null.</summary>
    public static string? BestKept(StatusReply s) => s.BestEpoch <= 0 ? null : s.StoppedEarly
        ? $"early stopping: validation accuracy stopped improving; keeping the weights of epoch {s.BestEpoch}"
        : $"keeping the weights of epoch {s.BestEpoch}, the best on validation";

    /// <summary>Updates applied since the run began, across the servers a resumed run has had.</summary>
    public static long GlobalStep(StatusReply s) => s.StartStep + s.Version;

    /// <summary>Updates, samples, time and rate (this server's), the staleness histogram and the pushes dropped or refused.</summary>
    public static string Totals(StatusReply s)
    {
        var hist = s.StalenessHistogram;
        string staleness = hist.Count == 0 ? "none" : string.Join(", ", hist.Select((n, k) => (n, k)).Where(p => p.n > 0).Select(p => $"{p.k}: {p.n}"));
        return string.Create(CultureInfo.InvariantCulture,
            $"{s.Version:N0} updates{(s.StartStep > 0 ? $" after resuming at global step {s.StartStep:N0}" : "")}, {s.Samples:N0} samples in {s.Seconds:F1} s, {s.ImagesPerSec:N0} images/s; staleness histogram {{{staleness}}}; {s.DroppedLate} dropped late, {s.RejectedPushes} rejected")
            + (s.UnauthenticatedCalls > 0 ? $", {s.UnauthenticatedCalls} call(s) refused for their cluster token" : "");
    }

    private void PrintSummary(StatusReply s)
    {
        if (!live)
        {
            PrintNewEpochs(s);
        }
        output.WriteLine($"cluster finished: {Totals(s)}");
        if (BestKept(s) is string kept)
        {
            output.WriteLine(kept);
        }
        if (options.TargetAccuracy is double target)
        {
            output.WriteLine(s.TimeToAccuracySeconds > 0
                ? string.Create(CultureInfo.InvariantCulture, $"time to {target:P1} test accuracy: {s.TimeToAccuracySeconds:F1} s")
                : string.Create(CultureInfo.InvariantCulture, $"the target of {target:P1} test accuracy was not reached"));
        }
        foreach (var w in s.Workers)
        {
            var t = w.Time ?? new TimeSplit();
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {w.Name}: {w.Pushes:N0} pushes, compute {t.ComputeMs / 1000:F1} s, push {t.PushMs / 1000:F1} s, pull {t.PullMs / 1000:F1} s, waiting {t.WaitMs / 1000:F1} s")
                + (w.Straggler ? string.Create(CultureInfo.InvariantCulture, $"; a straggler at the end: its gradients came {w.MeanLatenessMs:F1} ms after each step's first, on average") : "")
                + (s.Mode != "sync" ? string.Create(CultureInfo.InvariantCulture, $", mean staleness {w.MeanStaleness:F2}") : ""));
        }
    }
}

/// <summary>A tiny progress bar renderable for the live view.</summary>
internal sealed class ProgressBar : IRenderable
{
    public double Value { get; init; }
    public double MaxValue { get; init; } = 100;
    public int Width { get; init; } = 40;

    public Measurement Measure(RenderOptions options, int maxWidth) => new(Width, Width);

    public IEnumerable<Segment> Render(RenderOptions options, int maxWidth)
    {
        int filled = (int)Math.Round(Width * Math.Clamp(Value / MaxValue, 0, 1));
        yield return new Segment(new string('━', filled), new Style(Color.Green));
        yield return new Segment(new string('─', Width - filled), new Style(Color.Grey));
        yield return Segment.LineBreak;
    }
}
