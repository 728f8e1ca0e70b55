using Cluster.Launcher;

return Cli.Run(args, Console.Out, Console.Error);
