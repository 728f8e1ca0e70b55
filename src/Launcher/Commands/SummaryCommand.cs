using System.CommandLine;
using Cluster.Models;
using Cluster.Tensors;
using Spectre.Console;

namespace Cluster.Launcher.Commands;

/// <summary><c>cluster summary --model X</c>: each layer's output shape and parameter count, and the totals.</summary>
internal static class SummaryCommand
{
    public static Command Create(TextWriter output)
    {
        var model = CommonOptions.Model();
        var command = new Command("summary", "print a model's layers, output shapes and parameter counts") { model };
        command.SetAction(parse =>
        {
            var spec = ModelPresets.Resolve(parse.GetValue(model)!);
            var net = new Sequential(spec);
            var console = Terminal.For(output);
            var table = new Table().AddColumns("#", "layer", "output shape", "parameters");
            table.Columns[3].RightAligned();
            table.AddRow("", "input", Markup.Escape(Tensor.ShapeText(spec.InputShape)), "");
            for (int i = 0; i < net.Layers.Count; i++)
            {
                var layer = net.Layers[i];
                table.AddRow(i.ToString(), Markup.Escape(layer.Spec), Markup.Escape(Tensor.ShapeText(layer.OutputShape)), layer.ParameterCount.ToString("N0"));
            }
            table.AddRow("", "[bold]total[/]", "", $"[bold]{net.ParameterCount:N0}[/]");
            console.Write(new Rule($"model {Markup.Escape(spec.Name ?? "spec")}, loss {spec.LossName}").LeftJustified());
            console.Write(table);
            console.WriteLine($"{net.ParameterCount:N0} parameters ({net.ParameterCount * 4 / 1024.0:N0} KiB as float32)");
            return 0;
        });
        return command;
    }
}
