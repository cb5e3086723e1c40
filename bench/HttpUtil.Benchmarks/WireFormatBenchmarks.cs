using System.Buffers;
using System.Text;
using BenchmarkDotNet.Attributes;
using HttpUtil.Core;

namespace HttpUtil.Benchmarks;

/// <summary>
/// Head parsing and chunked decoding in the F# core. The "Floor" benchmarks do the least any
/// parser must: find the end of the head and decode it once (heads), or copy the bytes (chunked).
/// They run in the same process and job as the parser, so the ratio is comparable.
/// </summary>
[MemoryDiagnoser]
public class WireFormatBenchmarks
{
    // A typical browser GET: 523 bytes, 10 fields.
    public static readonly byte[] BrowserGet = Encoding.Latin1.GetBytes(
        "GET /products/catalog/search?q=wireless+headphones&sort=price_asc&page=2 HTTP/1.1\r\n" +
        "Host: shop.example.com\r\n" +
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
        "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
        "Accept-Language: en-US,en;q=0.5\r\n" +
        "Accept-Encoding: gzip, deflate, br, zstd\r\n" +
        "Referer: https://shop.example.com/products/catalog\r\n" +
        "Connection: keep-alive\r\n" +
        "Cookie: session=7f3c9a1e5b2d4c6f8a0b; theme=dark; cart=3\r\n" +
        "Upgrade-Insecure-Requests: 1\r\n" +
        "Priority: u=0, i\r\n" +
        "\r\n");

    // A typical response head: 288 bytes, 8 fields.
    public static readonly byte[] TypicalResponse = Encoding.Latin1.GetBytes(
        "HTTP/1.1 200 OK\r\n" +
        "Date: Sat, 21 Nov 2026 10:00:00 GMT\r\n" +
        "Server: nginx/1.22.1\r\n" +
        "Content-Type: text/html; charset=utf-8\r\n" +
        "Content-Length: 48213\r\n" +
        "Cache-Control: private, max-age=0, must-revalidate\r\n" +
        "ETag: \"5f2a-1c9d3e7b4a60\"\r\n" +
        "Vary: Accept-Encoding\r\n" +
        "Strict-Transport-Security: max-age=31536000\r\n" +
        "\r\n");

    public static readonly byte[] Chunked64K = MakeChunked(64 * 1024, 4 * 1024);

    private static byte[] MakeChunked(int total, int chunk)
    {
        var pieces = new List<byte[]>();
        for (var i = 0; i < total / chunk; i++)
        {
            pieces.Add(Enumerable.Repeat((byte)('a' + i % 26), chunk).ToArray());
        }

        var r = Chunked.encode(pieces, HttpUtil.Core.Headers.Empty);
        return r.IsOk ? r.ResultValue : throw new InvalidOperationException(r.ErrorValue.Message);
    }

    private readonly ParserSettings settings = ParserSettings.Default;
    private readonly byte[] sink = new byte[64 * 1024];
    private ReadOnlySequence<byte> get;
    private ReadOnlySequence<byte> resp;
    private ReadOnlySequence<byte> chunked;

    [GlobalSetup]
    public void Setup()
    {
        get = new ReadOnlySequence<byte>(BrowserGet);
        resp = new ReadOnlySequence<byte>(TypicalResponse);
        chunked = new ReadOnlySequence<byte>(Chunked64K);
    }

    [Benchmark(Description = "Parse browser GET head (523 B, 10 fields)")]
    public int ParseRequest()
    {
        var r = Parser.parseRequestHead(settings, get);
        return r.IsOk && r.ResultValue.IsComplete ? r.ResultValue.Value.Head.Headers.Count : -1;
    }

    [Benchmark(Description = "Floor: find head end + Latin-1 decode (GET)")]
    public int FloorRequest() => Floor(BrowserGet);

    [Benchmark(Description = "Parse response head (288 B, 8 fields)")]
    public int ParseResponse()
    {
        var r = Parser.parseResponseHead(settings, resp);
        return r.IsOk && r.ResultValue.IsComplete ? r.ResultValue.Value.Head.Status : -1;
    }

    [Benchmark(Description = "Floor: find head end + Latin-1 decode (response)")]
    public int FloorResponse() => Floor(TypicalResponse);

    [Benchmark(Description = "Decode 64 KiB chunked body (4 KiB chunks), copying out")]
    public long DecodeChunked()
    {
        var decoder = ChunkedDecoder.Start;
        var rest = chunked;
        var written = 0;
        while (true)
        {
            var r = Chunked.decode(settings, false, decoder, rest);
            if (!r.IsOk)
            {
                return -1;
            }

            var step = r.ResultValue;
            decoder = step.Decoder;
            if (step.Output.IsBodyData)
            {
                var data = step.Output.Data;
                data.CopyTo(sink.AsSpan(written));
                written += (int)data.Length;
            }
            else if (step.Output.IsBodyEnd)
            {
                return written;
            }
            else
            {
                return -2;
            }

            rest = rest.Slice(step.Consumed);
        }
    }

    [Benchmark(Description = "Floor: memcpy 64 KiB")]
    public int FloorChunked()
    {
        Chunked64K.AsSpan(0, sink.Length).CopyTo(sink);
        return sink.Length;
    }

    private static int Floor(byte[] head)
    {
        var end = head.AsSpan().IndexOf("\r\n\r\n"u8);
        return Encoding.Latin1.GetString(head, 0, end + 4).Length;
    }
}
