using System.Globalization;
using Cluster.Training;
using Spectre.Console;

namespace Cluster.Launcher.Commands;

/// <summary>
/// Shows a training run: on a terminal, a live Spectre.Console bar per epoch with loss, images/s
/// and ETA; when output is redirected, one plain line per epoch (and a heartbeat every ten
/// percent), so logs stay readable.
/// </summary>
internal static class ProgressView
{
    public static IReadOnlyList<EpochResult> Show(TextWriter output, Func<ITrainingObserver, IReadOnlyList<EpochResult>> run)
    {
        if (!Terminal.IsInteractive(output))
        {
            return run(new PlainObserver(output));
        }
        IReadOnlyList<EpochResult> results = [];
        AnsiConsole.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(context => results = run(new LiveObserver(context)));
        return results;
    }

    private static string Describe(EpochResult r)
    {
        string validation = r.ValidationAccuracy is double v ? string.Create(CultureInfo.InvariantCulture, $"validation accuracy {v:P2}, ") : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"epoch {r.Epoch}: train loss {r.TrainLoss:F4}, {validation}test loss {r.TestLoss:F4}, test accuracy {r.TestAccuracy:P2}, {r.ImagesPerSec:N0} images/s, {r.Seconds:F1} s");
    }

    private sealed class LiveObserver(ProgressContext context) : ITrainingObserver
    {
        private ProgressTask? _task;
        private int _epoch;

        public void EpochStarted(int epoch, int batches)
        {
            _epoch = epoch;
            _task = context.AddTask($"epoch {epoch}", maxValue: batches);
        }

        public void BatchDone(int epoch, int batch, float loss, double imagesPerSec)
        {
            _task!.Value = batch;
            if (batch % 5 == 0 || batch == (int)_task.MaxValue)
            {
                _task.Description = string.Create(CultureInfo.InvariantCulture, $"epoch {epoch}  loss {loss:F4}  {imagesPerSec:N0} img/s");
            }
        }

        public void Evaluating(int epoch) => _task!.Description = $"epoch {epoch}  evaluating";

        public void EpochDone(EpochResult result)
        {
            _task!.Description = string.Create(CultureInfo.InvariantCulture, $"epoch {_epoch}  acc {result.TestAccuracy:P2}  {result.ImagesPerSec:N0} img/s");
            _task.StopTask();
            AnsiConsole.MarkupLine(Markup.Escape(Describe(result)));
        }
    }

    private sealed class PlainObserver(TextWriter output) : ITrainingObserver
    {
        private int _batches;
        private int _nextReport;

        public void EpochStarted(int epoch, int batches)
        {
            _batches = batches;
            _nextReport = Math.Max(1, batches / 10);
        }

        public void BatchDone(int epoch, int batch, float loss, double imagesPerSec)
        {
            if (batch >= _nextReport && batch < _batches)
            {
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  epoch {epoch} {100.0 * batch / _batches,3:F0}%  loss {loss:F4}  {imagesPerSec:N0} images/s"));
                _nextReport += Math.Max(1, _batches / 10);
            }
        }

        public void Evaluating(int epoch)
        {
        }

        public void EpochDone(EpochResult result) => output.WriteLine(Describe(result));
    }
}
