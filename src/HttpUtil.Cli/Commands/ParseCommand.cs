using System.Buffers;
using System.CommandLine;
using System.Text;
using HttpUtil.Core;

namespace HttpUtil.Cli;

/// <summary><c>httputil parse</c>: prints what the core makes of a message (head, framing, chunked body).</summary>
public static class ParseCommand
{
    /// <summary>A request used when <c>parse</c> is given neither a file nor piped input.</summary>
    public const string SampleRequest =
        "POST /api/orders?dry-run=true HTTP/1.1\r\n" +
        "Host: shop.example.com\r\n" +
        "User-Agent: curl/8.5.0\r\n" +
        "Accept: application/json\r\n" +
        "Content-Type: application/json\r\n" +
        "Transfer-Encoding: chunked\r\n" +
        "\r\n" +
        "d\r\n{\"sku\":\"A-1\"}\r\n0\r\nX-Checksum: 9f2c\r\n\r\n";

    /// <summary>The <c>parse</c> command: a file (or '-' for standard input), <c>--response</c>,
    /// <c>--method</c>, <c>--lenient</c>.</summary>
    /// <returns>The command; it exits with 0 for a valid message, 1 for an invalid one, 4 when the file cannot be read.</returns>
    public static Command Create()
    {
        var file = new Argument<FileInfo?>("file")
        {
            Description = "A file holding an HTTP/1.x message, or '-' for standard input. Without it, a built-in sample request.",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var response = new Option<bool>("--response", "-r") { Description = "Parse a response instead of a request." };
        var method = new Option<string>("--method") { Description = "With --response: the method of the request it answers (for body framing).", DefaultValueFactory = _ => "GET" };
        var lenient = new Option<bool>("--lenient") { Description = "Accept bare LF line endings and obs-fold in responses." };
        var parse = new Command("parse", "Parse an HTTP/1.x head (and a chunked body) and print its parts.")
        {
            file, response, method, lenient,
        };
        parse.SetAction(result =>
        {
            var path = result.GetValue(file);
            byte[] bytes;
            try
            {
                bytes = path is null
                    ? Encoding.Latin1.GetBytes(SampleRequest)
                    : path.Name == "-" ? ReadAll(Console.OpenStandardInput()) : File.ReadAllBytes(path.FullName);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return CommandRunner.Fail(ExitCode.BadFile, $"cannot read {path?.FullName}: {e.Message}");
            }

            var settings = result.GetValue(lenient)
                ? ParserSettings.Default.WithLenience(Lenience.Strict.WithAllowBareLf(true).WithAllowObsFoldInResponses(true))
                : ParserSettings.Default;
            return Run(Console.Out, bytes, settings, result.GetValue(response), result.GetValue(method) ?? "GET");
        });
        return parse;
    }

    private static byte[] ReadAll(Stream s)
    {
        using var m = new MemoryStream();
        s.CopyTo(m);
        return m.ToArray();
    }

    /// <summary>Parses <paramref name="bytes"/> and writes a report to <paramref name="output"/>.</summary>
    /// <param name="output">Where the report goes.</param>
    /// <param name="bytes">The message.</param>
    /// <param name="settings">Limits and lenience.</param>
    /// <param name="isResponse">True to read a response, false a request.</param>
    /// <param name="requestMethod">For a response: the method of the request it answers.</param>
    /// <returns>0 when the message is valid, 1 otherwise.</returns>
    public static int Run(TextWriter output, byte[] bytes, ParserSettings settings, bool isResponse, string requestMethod)
    {
        var input = new ReadOnlySequence<byte>(bytes);
        OperationStatus status;
        long consumed;
        HttpError? error;
        BodyFraming framing = BodyFraming.None;
        long length = 0;
        if (isResponse)
        {
            status = Http1Parser.TryParseResponseHead(in input, settings, out var parsed, out consumed, out error);
            if (status == OperationStatus.Done)
            {
                var head = parsed!.Head;
                output.WriteLine($"status-line  {head.Version.Text} {head.Status} \"{head.Reason}\"");
                WriteFields(output, "fields", head.Headers);
                Http1Parser.TryGetBodyFraming(requestMethod, head, out framing, out length, out error);
            }
        }
        else
        {
            status = Http1Parser.TryParseRequestHead(in input, settings, out var parsed, out consumed, out error);
            if (status == OperationStatus.Done)
            {
                var head = parsed!.Head;
                output.WriteLine($"method       {head.Method}");
                output.WriteLine($"target       {head.Target} ({head.Form} form)");
                output.WriteLine($"version      {head.Version.Text}");
                WriteFields(output, "fields", head.Headers);
                Http1Parser.TryGetBodyFraming(head, out framing, out length, out error);
            }
        }

        if (error is not null)
        {
            output.WriteLine($"error        {error.Kind} at byte {error.Offset}: {error.Message} (answer {error.StatusHint})");
            return 1;
        }
        if (status == OperationStatus.NeedMoreData)
        {
            output.WriteLine($"incomplete   the head does not end within the {bytes.Length} bytes given");
            return 1;
        }

        output.WriteLine($"head         {consumed} bytes");
        output.WriteLine($"body         {Describe(framing, length)}");
        return framing == BodyFraming.Chunked ? DumpBody(output, input.Slice(consumed), framing, length, settings, !isResponse) : 0;
    }

    private static string Describe(BodyFraming framing, long length) => framing switch
    {
        BodyFraming.None => "none",
        BodyFraming.ContentLength => $"{length} bytes (Content-Length)",
        BodyFraming.Chunked => "chunked",
        _ => "until the connection closes",
    };

    private static void WriteFields(TextWriter output, string label, Headers headers)
    {
        output.WriteLine($"{label,-12} {headers.Count}");
        foreach (var f in headers.Fields) output.WriteLine($"  {f.Name}: {f.Value}");
    }

    private static int DumpBody(TextWriter output, ReadOnlySequence<byte> rest, BodyFraming framing, long length, ParserSettings settings, bool isRequest)
    {
        var reader = new BodyReader(framing, length, isRequest, settings);
        var data = new MemoryStream();
        while (true)
        {
            switch (reader.Read(in rest, true, out var piece, out var consumed, out var error))
            {
                case BodyReadStatus.Data:
                    foreach (var segment in piece) data.Write(segment.Span);
                    rest = rest.Slice(consumed);
                    break;
                case BodyReadStatus.End:
                    output.WriteLine($"body data    {data.Length} bytes: {Encoding.Latin1.GetString(data.ToArray())}");
                    WriteFields(output, "trailers", reader.Trailers);
                    return 0;
                default:
                    output.WriteLine($"error        {error!.Kind} at body byte {error.Offset}: {error.Message}");
                    return 1;
            }
        }
    }
}
