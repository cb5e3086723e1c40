using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Spectre.Console;

namespace HttpUtil.Cli;

/// <summary>One phase of a traced request: where it starts and how long it takes, in milliseconds from the start.</summary>
/// <param name="Name">The phase's name in JSON (<c>dns_lookup</c>, ...).</param>
/// <param name="Title">The phase's name for people.</param>
/// <param name="StartMs">When it started.</param>
/// <param name="Ms">How long it took; 0 when it did not happen.</param>
/// <param name="Happened">False for a phase the request skipped (no lookup, a reused connection, no TLS).</param>
public sealed record Phase(string Name, string Title, double StartMs, double Ms, bool Happened);

/// <summary>What <c>trace</c> found about one request, and how it is shown: as a waterfall with the connection's facts,
/// or as one JSON object.</summary>
/// <param name="Index">1 for the first request of <c>-n</c>.</param>
/// <param name="Url">The URL.</param>
/// <param name="Timings">The measured phases and connection facts.</param>
/// <param name="Response">The response (its body already read).</param>
/// <param name="BodyBytes">How many body bytes arrived.</param>
public sealed record TraceReport(int Index, Uri Url, RequestTimings Timings, HttpResponseMessage Response, long BodyBytes)
{
    /// <summary>The phases in order, back to back: they add up to <see cref="TotalMs"/>.</summary>
    public IReadOnlyList<Phase> Phases
    {
        get
        {
            var t = Timings;
            var list = new List<Phase>(6);
            var at = 0.0;
            void Add(string name, string title, TimeSpan? span)
            {
                var ms = span?.TotalMilliseconds ?? 0;
                list.Add(new Phase(name, title, at, ms, span is not null));
                at += ms;
            }
            Add("dns_lookup", "DNS lookup", t.DnsLookup);
            Add("tcp_connection", "TCP connection", t.TcpConnection);
            Add("tls_handshake", "TLS handshake", t.TlsHandshake);
            Add("request_sent", "Request sent", t.RequestSent);
            Add("server_processing", "Server processing", t.ServerProcessing);
            Add("content_transfer", "Content transfer", t.ContentTransfer);
            return list;
        }
    }

    /// <summary>From the start to the end of the body.</summary>
    public double TotalMs => Timings.Total?.TotalMilliseconds ?? 0;

    private string StatusLine => $"HTTP/{Response.Version} {(int)Response.StatusCode} {Response.ReasonPhrase}";

    private IEnumerable<(string Name, string Value)> Fields()
    {
        foreach (var (name, values) in Response.Headers.NonValidated)
            foreach (var v in values) yield return (name, v);
        foreach (var (name, values) in Response.Content.Headers.NonValidated)
            foreach (var v in values) yield return (name, v);
    }

    /// <summary>Draws the waterfall (a bar per phase on one time axis), the connection's facts and the response head.</summary>
    /// <param name="console">Where to draw.</param>
    public void Render(IAnsiConsole console)
    {
        var phases = Phases;
        var total = Math.Max(TotalMs, 1e-6);
        const int width = 40;
        var colors = new[] { "aqua", "green", "fuchsia", "yellow", "blue", "red" };
        var table = new Table().Border(TableBorder.Simple).Title($"[bold]#{Index}[/] {Markup.Escape(Response.RequestMessage?.Method + " " + Url)}");
        table.AddColumn("Phase");
        table.AddColumn(new TableColumn("ms").RightAligned());
        table.AddColumn("");
        for (var i = 0; i < phases.Count; i++)
        {
            var p = phases[i];
            if (!p.Happened)
            {
                table.AddRow(p.Title, "-", "");
                continue;
            }
            var from = (int)Math.Round(p.StartMs / total * width);
            var length = Math.Max(1, (int)Math.Round(p.Ms / total * width));
            from = Math.Min(from, width - length);
            var bar = new string(' ', Math.Max(0, from)) + $"[{colors[i]}]{new string('█', length)}[/]";
            table.AddRow(p.Title, $"{p.Ms:F3}", bar);
        }
        table.AddRow("[bold]Total[/]", $"[bold]{TotalMs:F3}[/]", "");
        console.Write(table);

        var t = Timings;
        var facts = new Grid().AddColumn(new GridColumn().NoWrap().PadRight(2)).AddColumn();
        facts.AddRow("Remote address", Markup.Escape(t.RemoteAddress ?? "unknown"));
        facts.AddRow("Connection", t.Reused ? $"reused{(t.WasIdle ? $", idle for {t.IdleTime.TotalMilliseconds:F1} ms" : "")}" : "new");
        if (t.DnsAddresses.Count > 0)
            facts.AddRow("DNS", Markup.Escape(string.Join(", ", t.DnsAddresses) + (t.DnsCoalesced ? " (joined a lookup in flight)" : "")));
        if (t.Tls is { } tls)
        {
            facts.AddRow("TLS", Markup.Escape($"{tls.Protocol}, {tls.CipherSuite}, ALPN {(tls.ApplicationProtocol.Length == 0 ? "none" : tls.ApplicationProtocol)}"));
            if (tls.RemoteCertificate is { } cert)
            {
                var x = cert as X509Certificate2 ?? new X509Certificate2(cert);
                facts.AddRow("Certificate", Markup.Escape($"{x.Subject}, expires {x.NotAfter:yyyy-MM-dd}"));
            }
        }
        facts.AddRow("Body", $"{BodyBytes} bytes");
        console.Write(facts);
        console.WriteLine();
        console.MarkupLine($"[bold]{Markup.Escape(StatusLine)}[/]");
        foreach (var (name, value) in Fields()) console.MarkupLine($"[grey]{Markup.Escape(name)}:[/] {Markup.Escape(value)}");
        console.WriteLine();
    }

    /// <summary>Writes the report as one JSON object on one line: url, status, version, total_ms, the phases (name, start_ms,
    /// ms, happened), the connection's facts and the response fields.</summary>
    /// <param name="output">Where to write.</param>
    public void WriteJson(TextWriter output)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteNumber("request", Index);
            json.WriteString("url", Url.ToString());
            json.WriteString("method", Response.RequestMessage?.Method.Method);
            json.WriteNumber("status", (int)Response.StatusCode);
            json.WriteString("version", Response.Version.ToString());
            json.WriteNumber("total_ms", Math.Round(TotalMs, 3));
            json.WriteStartArray("phases");
            foreach (var p in Phases)
            {
                json.WriteStartObject();
                json.WriteString("name", p.Name);
                json.WriteNumber("start_ms", Math.Round(p.StartMs, 3));
                json.WriteNumber("ms", Math.Round(p.Ms, 3));
                json.WriteBoolean("happened", p.Happened);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            var t = Timings;
            json.WriteStartObject("connection");
            json.WriteString("remote_address", t.RemoteAddress);
            json.WriteBoolean("reused", t.Reused);
            json.WriteBoolean("was_idle", t.WasIdle);
            json.WriteNumber("idle_ms", Math.Round(t.IdleTime.TotalMilliseconds, 3));
            json.WriteStartArray("dns_addresses");
            foreach (var a in t.DnsAddresses) json.WriteStringValue(a.ToString());
            json.WriteEndArray();
            json.WriteBoolean("dns_coalesced", t.DnsCoalesced);
            if (t.Tls is { } tls)
            {
                json.WriteStartObject("tls");
                json.WriteString("version", tls.Protocol.ToString());
                json.WriteString("cipher", tls.CipherSuite.ToString());
                json.WriteString("alpn", tls.ApplicationProtocol);
                if (tls.RemoteCertificate is { } cert)
                {
                    var x = cert as X509Certificate2 ?? new X509Certificate2(cert);
                    json.WriteString("certificate_subject", x.Subject);
                    json.WriteString("certificate_expires", x.NotAfter.ToUniversalTime().ToString("o"));
                }
                json.WriteEndObject();
            }
            else json.WriteNull("tls");
            json.WriteEndObject();
            json.WriteNumber("body_bytes", BodyBytes);
            json.WriteStartArray("headers");
            foreach (var (name, value) in Fields())
            {
                json.WriteStartArray();
                json.WriteStringValue(name);
                json.WriteStringValue(value);
                json.WriteEndArray();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        output.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length));
    }
}
