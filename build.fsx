// The build: dotnet fsi build.fsx -- <Target>   (Clean, Build, Pack, Test, Fuzz, Differential, Bench, Format)
// Test ends with the line "N passed, N failed, N skipped" and exits non-zero on any failure or
// on a build that broke before the tests could run.
#r "nuget: Fake.Core.Target, 5.20.3"
#r "nuget: Fake.Core.Process, 5.20.3"
#r "nuget: Fake.IO.FileSystem, 5.20.3"

open System
open System.IO
open System.Xml.Linq
open Fake.Core
open Fake.IO
open Fake.IO.Globbing.Operators

// FAKE needs an execution context before targets run when hosted by dotnet fsi.
// "dotnet fsi build.fsx -- Test" passes the target by name; FAKE's parser wants "--target Test".
let args =
    match fsi.CommandLineArgs |> Array.skip 1 |> Array.filter (fun a -> a <> "--") |> List.ofArray with
    | [ target ] when not (target.StartsWith "-") -> [ "--target"; target ]
    | other -> other

Context.FakeExecutionContext.Create false "build.fsx" args |> Context.RuntimeContext.Fake |> Context.setExecutionContext

let root = __SOURCE_DIRECTORY__
let solution = Path.Combine(root, "HttpUtil.sln")
let resultsDir = Path.Combine(root, "TestResults")

/// Runs dotnet with arguments in the repository root; returns the exit code.
let dotnet (arguments: string list) =
    CreateProcess.fromRawCommand "dotnet" arguments
    |> CreateProcess.withWorkingDirectory root
    |> Proc.run
    |> fun r -> r.ExitCode

let dotnetOrFail arguments =
    let code = dotnet arguments
    if code <> 0 then failwithf "dotnet %s failed with exit code %d" (String.Join(" ", arguments)) code

Target.create "Clean" (fun _ ->
    !!(root + "/src/*/bin") ++ (root + "/src/*/obj") ++ (root + "/tests/*/bin") ++ (root + "/tests/*/obj") ++ (root + "/bench/*/bin") ++ (root + "/bench/*/obj")
    |> Shell.deleteDirs
    Shell.deleteDir resultsDir)

let buildArgs = [ "build"; solution; "-c"; "Release"; "-nologo"; "-clp:NoSummary" ]

Target.create "Build" (fun _ -> dotnetOrFail buildArgs)

// Fuzzing for a while: HTTPUTIL_FUZZ_SECONDS (default 300) of generated and mutated messages against the core's
// invariants; an input that breaks one is saved under tests/HttpUtil.Core.Tests/regressions/ (then commit it: it is
// replayed by the test suite from then on).
Target.create "Fuzz" (fun _ ->
    if String.IsNullOrEmpty(Environment.GetEnvironmentVariable "HTTPUTIL_FUZZ_SECONDS") then
        Environment.SetEnvironmentVariable("HTTPUTIL_FUZZ_SECONDS", "300")

    dotnetOrFail buildArgs
    dotnetOrFail [ "test"; Path.Combine(root, "tests", "HttpUtil.Core.Tests", "HttpUtil.Core.Tests.fsproj"); "-c"; "Release"; "--no-build"; "--filter"; "TestCategory=Fuzz"; "--logger"; "console;verbosity=detailed" ])

// The differential check alone: ServerConn against Kestrel, Node and Go on the corpus in DifferentialTests.fs, the
// generated combinations, then random requests and random responses, each for HTTPUTIL_DIFF_SECONDS (default 300;
// seed HTTPUTIL_DIFF_SEED).
Target.create "Differential" (fun _ ->
    if String.IsNullOrEmpty(Environment.GetEnvironmentVariable "HTTPUTIL_DIFF_SECONDS") then
        Environment.SetEnvironmentVariable("HTTPUTIL_DIFF_SECONDS", "300")

    dotnetOrFail buildArgs
    dotnetOrFail [ "test"; Path.Combine(root, "tests", "HttpUtil.Tests", "HttpUtil.Tests.fsproj"); "-c"; "Release"; "--no-build"; "--filter"; "FullyQualifiedName~DifferentialTests"; "--logger"; "console;verbosity=detailed" ])

// The packages: HttpUtil, HttpUtil.Core and the tool HttpUtil.Tool, in artifacts/.
Target.create "Pack" (fun _ ->
    Shell.deleteDir (Path.Combine(root, "artifacts"))
    dotnetOrFail [ "pack"; solution; "-c"; "Release"; "-nologo"; "-o"; Path.Combine(root, "artifacts") ])

/// Sums the <Counters> of every .trx under the results directory.
let countResults () =
    let files = if Directory.Exists resultsDir then Directory.GetFiles(resultsDir, "*.trx", SearchOption.AllDirectories) else [||]

    let sum =
        files
        |> Array.map (fun f ->
            let doc = XDocument.Load f
            let c = doc.Descendants() |> Seq.find (fun e -> e.Name.LocalName = "Counters")
            let get (n: string) = match c.Attribute(XName.Get n) with | null -> 0 | a -> int a.Value
            get "passed", get "failed" + get "error" + get "timeout" + get "aborted", get "notExecuted" + get "inconclusive")
        |> Array.fold (fun (p, f, s) (p2, f2, s2) -> p + p2, f + f2, s + s2) (0, 0, 0)

    files.Length, sum

Target.create "Test" (fun _ ->
    Shell.deleteDir resultsDir
    let buildCode = dotnet buildArgs

    let testCode =
        if buildCode <> 0 then buildCode
        else
            let projects = !!(root + "/tests/**/*.Tests.fsproj") ++ (root + "/tests/**/*.Tests.csproj") |> List.ofSeq

            projects
            |> List.map (fun p ->
                dotnet [ "test"; p; "-c"; "Release"; "--no-build"; "--logger"; "trx"; "--results-directory"; resultsDir ])
            |> List.fold max 0

    let files, (passed, failed, skipped) = countResults ()
    // A broken build, or a test run that wrote no results, counts as a failure.
    let failed = if buildCode <> 0 || files = 0 then failed + 1 else failed
    printfn "%d passed, %d failed, %d skipped" passed failed skipped
    if failed > 0 || testCode <> 0 then failwith "tests failed")

Target.create "Bench" (fun _ ->
    dotnetOrFail [ "run"; "--project"; Path.Combine(root, "bench/HttpUtil.Benchmarks"); "-c"; "Release"; "--"; "--filter"; "*" ])

// fantomas walks the folders itself and leaves generated files under obj/ alone.
Target.create "Format" (fun _ -> dotnetOrFail [ "fantomas"; "--check"; "src"; "tests" ])

Target.runOrDefaultWithArguments "Build"
