/// The packages as a user gets them: `dotnet pack` output installs the tool, and a new console project that
/// references the library from it builds every C# example in the README and runs.
module HttpUtil.Tests.PackageTests

open System
open System.IO
open System.Text
open System.Text.RegularExpressions
open NUnit.Framework
open HttpUtil.Tests.Support

/// A C# block of the README, with the marker comment just above it (if any).
type private Block = { Marker: string; Code: string }

let private readmeBlocks (readme: string) =
    Regex.Matches(
        readme.Replace("\r\n", "\n"),
        @"(?:<!-- readme-examples: ([^>]*?) -->\n)?```csharp\n(.*?)```",
        RegexOptions.Singleline
    )
    |> Seq.map (fun m ->
        {
            Marker = m.Groups[1].Value.Trim()
            Code = m.Groups[2].Value
        })
    |> List.ofSeq

/// Every README block that is not marked to skip, as one compilable file: `using` directives go to the top, each
/// block's statements into an async method of its own (taking the `app` some blocks configure).
let private examplesFile (blocks: Block list) =
    let isUsing (l: string) =
        Regex.IsMatch(l.Trim(), @"^using [A-Za-z][A-Za-z0-9_.]*;$")

    let defaults =
        [
            "using System.Buffers;"
            "using System.Diagnostics;"
            "using System.IO.Pipelines;"
            "using System.Net;"
            "using System.Net.Sockets;"
            "using System.Text;"
            "using HttpUtil;"
            "using HttpUtil.Core;"
            "using Microsoft.AspNetCore.Builder;"
            "using Microsoft.AspNetCore.Http;"
        ]

    let usings =
        blocks
        |> List.collect (fun b ->
            b.Code.Split('\n')
            |> Array.filter isUsing
            |> Array.map (fun l -> l.Trim())
            |> List.ofArray)
        |> List.append defaults
        |> List.distinct

    let sb = StringBuilder()

    for u in usings do
        sb.AppendLine u |> ignore

    sb.AppendLine("#pragma warning disable").AppendLine("public static class ReadmeExamples").AppendLine("{")
    |> ignore

    blocks
    |> List.iteri (fun i b ->
        sb.AppendLine(sprintf "    public static async Task Example%d(WebApplication app)" (i + 1)).AppendLine("    {")
        |> ignore

        for l in b.Code.Split('\n') do
            if not (isUsing l) then
                sb.Append("        ").AppendLine(l) |> ignore

        sb.AppendLine("        await Task.CompletedTask;").AppendLine("    }") |> ignore)

    sb.AppendLine("}").ToString()

[<Test>]
let ``the packages install: the tool runs from them, and a new project referencing HttpUtil builds every README example and runs``
    ()
    =
    task {
        let root = repositoryRoot ()
        let work = Directory.CreateTempSubdirectory("httputil-packages-").FullName

        try
            let artifacts = Path.Combine(work, "artifacts")
            // A package cache of its own, so that packages from an earlier run are never taken for these.
            let env =
                [
                    "NUGET_PACKAGES", Path.Combine(work, "packages")
                    "DOTNET_CLI_TELEMETRY_OPTOUT", "1"
                    "DOTNET_NOLOGO", "1"
                ]

            let dotnet dir (args: string list) =
                task {
                    let! code, out, err = runFor 300.0 env (Some dir) "dotnet" args
                    Assert.That(code, Is.EqualTo 0, sprintf "dotnet %s\n%s\n%s" (String.Join(" ", args)) out err)
                    return out
                }

            for project in [ "src/HttpUtil.Core"; "src/HttpUtil"; "src/HttpUtil.Cli" ] do
                let! _ =
                    dotnet root [ "pack"; project; "-c"; configuration (); "--no-build"; "-o"; artifacts ]

                ()

            let names =
                Directory.GetFiles(artifacts, "*.nupkg")
                |> Array.map Path.GetFileName
                |> Array.sort

            Assert.That(
                names,
                Is.EqualTo(
                    box
                        [|
                            "HttpUtil.0.1.0.nupkg"
                            "HttpUtil.Core.0.1.0.nupkg"
                            "HttpUtil.Tool.0.1.0.nupkg"
                        |]
                )
            )

            // The tool, installed from the folder alone.
            let tools = Path.Combine(work, "tools")

            let! _ =
                dotnet
                    work
                    [
                        "tool"
                        "install"
                        "--tool-path"
                        tools
                        "--add-source"
                        artifacts
                        "HttpUtil.Tool"
                        "--version"
                        "0.1.0"
                    ]

            let! code, out, err =
                runFor 60.0 env None (Path.Combine(tools, "httputil")) [ "parse" ]

            Assert.That(code, Is.EqualTo 0, err)
            Assert.That(out, Does.Contain "target       /api/orders?dry-run=true (Origin form)")

            // The library, in a new console project, as the README says.
            let! _ = dotnet work [ "new"; "console"; "-o"; "Hello" ]
            let hello = Path.Combine(work, "Hello")
            let! _ = dotnet hello [ "new"; "nugetconfig" ]
            let! _ = dotnet hello [ "nuget"; "add"; "source"; artifacts; "--name"; "local" ]
            let! _ = dotnet hello [ "add"; "package"; "HttpUtil"; "--version"; "0.1.0" ]

            let blocks = readmeBlocks (File.ReadAllText(Path.Combine(root, "README.md")))
            let program = blocks |> List.find (fun b -> b.Marker = "Program.cs")

            let examples = blocks |> List.filter (fun b -> b.Marker = "")

            Assert.That(examples.Length, Is.GreaterThanOrEqualTo 10, "the README's examples were found")
            File.WriteAllText(Path.Combine(hello, "Program.cs"), program.Code)
            File.WriteAllText(Path.Combine(hello, "ReadmeExamples.cs"), examplesFile examples)

            let! out = dotnet hello [ "run" ]

            Assert.That(
                out.Replace("\r", ""),
                Is.EqualTo(
                    "POST /upload HTTP/1.1\nHost: example.test\nContent-Type: text/plain; charset=utf-8\nContent-Length: 2\n\nhi\n"
                ),
                "the program prints the request as Transport writes it"
            )
        finally
            try
                Directory.Delete(work, true)
            with _ ->
                ()
    }
    |> sync
