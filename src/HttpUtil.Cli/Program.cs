using System.Buffers;
using System.CommandLine;
using System.Text;
using HttpUtil.Core;
using Microsoft.FSharp.Core;

namespace HttpUtil.Cli;

/// <summary>The <c>httputil</c> command.</summary>
public static class Program
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

    /// <summary>Runs the command line; returns the process exit code (0 ok, 1 invalid input, 2 usage).</summary>
    public static int Main(string[] args)
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
                Console.Error.WriteLine($"httputil: cannot read {path?.FullName}: {e.Message}");
                return 2;
            }

            var settings = result.GetValue(lenient)
                ? ParserSettings.Default.WithLenience(new Lenience(allowBareLf: true, allowObsFoldInResponses: true))
                : ParserSettings.Default;
            return Dump.Run(Console.Out, bytes, settings, result.GetValue(response), result.GetValue(method) ?? "GET");
        });

        var demo = new Command("demo", "Pipeline three requests from a ClientConn to a ServerConn on an embedded 127.0.0.1 upstream and print both sides of the wire.");
        demo.SetAction((_, ct) => Demo.RunAsync(Console.Out, ct));

        var url = new Argument<string>("url") { Description = "An absolute http or https URL." };
        var traceMethod = new Option<string>("--method", "-X") { Description = "The request method.", DefaultValueFactory = _ => "GET" };
        var insecure = new Option<bool>("--insecure", "-k") { Description = "Accept any server certificate." };
        var trace = new Command("trace", "Send one request through Transport and print a timing waterfall of every ClientTrace hook.")
        {
            url, traceMethod, insecure,
        };
        trace.SetAction((result, ct) =>
        {
            var text = result.GetValue(url) ?? "";
            if (!Uri.TryCreate(text, UriKind.Absolute, out var target) || (target.Scheme != Uri.UriSchemeHttp && target.Scheme != Uri.UriSchemeHttps))
            {
                Console.Error.WriteLine($"httputil: '{text}' is not an absolute http or https URL");
                return Task.FromResult(2);
            }
            return TraceCommand.RunAsync(Console.Out, target, result.GetValue(traceMethod), result.GetValue(insecure), ct);
        });

        var root = new RootCommand("httputil: Go's net/http/httputil and httptrace for .NET") { parse, demo, trace };
        return root.Parse(args).Invoke();
    }

    private static byte[] ReadAll(Stream s)
    {
        using var m = new MemoryStream();
        s.CopyTo(m);
        return m.ToArray();
    }
}

/// <summary>Prints what the core makes of a message.</summary>
public static class Dump
{
    /// <summary>Parses <paramref name="bytes"/> and writes a report to <paramref name="output"/>; returns 0 when the message is valid, 1 otherwise.</summary>
    public static int Run(TextWriter output, byte[] bytes, ParserSettings settings, bool isResponse, string requestMethod)
    {
        var input = new ReadOnlySequence<byte>(bytes);
        var (error, consumed, body) = isResponse
            ? Head(Parser.parseResponseHead(settings, input), head =>
            {
                output.WriteLine($"status-line  {head.Version.Text} {head.Status} \"{head.Reason}\"");
                WriteFields(output, head.Headers);
                return Framing.responseBody(requestMethod, head);
            })
            : Head(Parser.parseRequestHead(settings, input), head =>
            {
                output.WriteLine($"method       {head.Method}");
                output.WriteLine($"target       {head.Target} ({head.Form} form)");
                output.WriteLine($"version      {head.Version.Text}");
                WriteFields(output, head.Headers);
                return Framing.requestBody(head);
            });

        if (error is not null)
        {
            output.WriteLine($"error        {error.Kind} at byte {error.Offset}: {error.Message}");
            return 1;
        }

        if (body is null)
        {
            output.WriteLine($"incomplete   the head does not end within the {bytes.Length} bytes given");
            return 1;
        }

        output.WriteLine($"head         {consumed} bytes");
        output.WriteLine($"body         {Describe(body)}");
        return body.IsChunked ? DumpChunked(output, input.Slice(consumed), settings, !isResponse) : 0;
    }

/// <summary>Prints a parsed head with <paramref name="print"/>, which returns its body framing; yields the error (parse or framing), the head's length, and the framing.</summary>
    private static (HttpError? Error, long Consumed, Framing.BodyLength? Body) Head<T>(
        FSharpResult<Incremental<Parsed<T>>, HttpError> parsed,
        Func<T, FSharpResult<Framing.BodyLength, HttpError>> print)
    {
        if (parsed.IsError)
        {
            return (parsed.ErrorValue, 0, null);
        }

        if (!parsed.ResultValue.IsComplete)
        {
            return (null, 0, null);
        }

        var framing = print(parsed.ResultValue.Value.Head);
        return framing.IsError
            ? (framing.ErrorValue, parsed.ResultValue.Consumed, null)
            : (null, parsed.ResultValue.Consumed, framing.ResultValue);
    }

    private static string Describe(Framing.BodyLength body) => body switch
    {
        { IsNoBody: true } => "none",
        Framing.BodyLength.ContentLength cl => $"{cl.Item} bytes (Content-Length)",
        { IsChunked: true } => "chunked",
        _ => "until the connection closes",
    };

    private static void WriteFields(TextWriter output, HttpUtil.Core.Headers headers)
    {
        output.WriteLine($"fields       {headers.Count}");
        foreach (var f in headers.Fields)
        {
            output.WriteLine($"  {f.Name}: {f.Value}");
        }
    }

    private static int DumpChunked(TextWriter output, ReadOnlySequence<byte> rest, ParserSettings settings, bool isRequest)
    {
        var decoder = ChunkedDecoder.Start;
        var data = new MemoryStream();
        while (true)
        {
            var r = Chunked.decode(settings, isRequest, decoder, rest);
            if (r.IsError)
            {
                output.WriteLine($"error        {r.ErrorValue.Kind} at body byte {r.ErrorValue.Offset}: {r.ErrorValue.Message}");
                return 1;
            }

            var step = r.ResultValue;
            decoder = step.Decoder;
            rest = rest.Slice(step.Consumed);
            if (step.Output.IsBodyData)
            {
                foreach (var segment in step.Output.Data)
                {
                    data.Write(segment.Span);
                }
            }
            else if (step.Output.IsBodyEnd)
            {
                output.WriteLine($"body data    {data.Length} bytes: {Encoding.Latin1.GetString(data.ToArray())}");
                output.WriteLine($"trailers     {step.Output.Trailers.Count}");
                foreach (var f in step.Output.Trailers.Fields)
                {
                    output.WriteLine($"  {f.Name}: {f.Value}");
                }

                return 0;
            }
            else
            {
                output.WriteLine($"incomplete   the chunked body is truncated after {decoder.BodyBytes} data bytes");
                return 1;
            }
        }
    }
}
