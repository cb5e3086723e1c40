using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(HttpUtil.Benchmarks.WireFormatBenchmarks).Assembly).Run(args);
