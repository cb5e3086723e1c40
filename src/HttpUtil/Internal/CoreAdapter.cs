using System.Buffers;
using System.IO.Pipelines;
using System.Net.Http.Headers;
using HttpUtil.Core;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using CoreVersion = HttpUtil.Core.Http1Version;

namespace HttpUtil;

// The only C# that touches F# representations (FSharpList, options, results, union cases and
// constructors, tuples). Everything else in the facade calls the methods here and gets plain .NET
// values back. No protocol decision is made here either: each method forwards to one core function.

/// <summary>The two halves of an exchange, as the shell names them.</summary>
internal enum ExchangePhase
{
    /// <summary>Client: writing the request. Server: reading it.</summary>
    Request,

    /// <summary>Client: reading the response. Server: writing it.</summary>
    Response,
}

/// <summary>The core's verdict when an operation's turn comes: go ahead (and whether the message it
/// writes is the last), or fail with <see cref="Refusal"/>.</summary>
internal readonly record struct TurnVerdict(bool Proceed, bool EndsConnection, ConnError? Refusal);

/// <summary>What the core asks the shell to do after an event.</summary>
internal enum CoreActionKind
{
    /// <summary>The operation of <c>Phase</c>/<c>Slot</c> has its turn, with <c>Verdict</c>.</summary>
    Grant,

    /// <summary>A new exchange got <c>Slot</c>.</summary>
    Assigned,

    /// <summary>A message was read for <c>Slot</c>; <c>IsLast</c>: it ended the connection.</summary>
    Deliver,

    /// <summary>Write <c>100 Continue</c> for <c>Slot</c> now.</summary>
    SendContinue,

    /// <summary>Close the transport.</summary>
    CloseTransport,

    /// <summary>Hand the transport to the caller.</summary>
    HandOver,
}

/// <summary>One action of the core, in plain C#.</summary>
internal readonly record struct CoreAction(CoreActionKind Kind, ExchangePhase Phase, int Slot, TurnVerdict Verdict, bool IsLast);

/// <summary>
/// The core's connection state machine (<c>Connection.step</c>) behind plain C# calls. Not thread-safe:
/// <see cref="TurnGate"/> holds its lock around every call. The actions of the last call are in
/// <see cref="Actions"/> until the next call.
/// </summary>
internal sealed class ConnectionMachine
{
    private static readonly ConnEvent StartReadRequestEvent = ConnEvent.StartReadRequest;
    private readonly List<CoreAction> actions = new(4);
    private readonly string objectName;
    private ConnState state;

    public ConnectionMachine(bool client, string objectName)
    {
        state = Connection.create(client ? Role.ClientRole : Role.ServerRole);
        this.objectName = objectName;
    }

    /// <summary>The exception a refusal surfaces as on this connection.</summary>
    public Exception ToException(ConnError error) => CoreAdapter.ToException(error, objectName);

    /// <summary>The actions the last event produced.</summary>
    public List<CoreAction> Actions => actions;

    /// <summary>Unanswered requests (Go's <c>Pending</c>).</summary>
    public int Pending => Connection.pending(state);

    /// <summary>True when the connection may carry another exchange now.</summary>
    public bool Reusable => Connection.reusable(state);

    /// <summary>The exception the next read would fail with because of the reading side; null while it is open.</summary>
    public Exception? ReadFailure => Connection.readError(state) is { IsSome: true } e ? CoreAdapter.ToException(e.Value, objectName) : null;

    /// <summary>Client: true when the request of <paramref name="slot"/> may wait for <c>100 Continue</c>.</summary>
    public bool MayAwaitContinue(int slot) => Connection.mayAwaitContinue(slot, state);

    private static readonly ConnEvent StartWriteKeepEvent = ConnEvent.NewStartWriteRequest(false);

    public void StartWriteRequest(bool closes) => Feed(closes ? ConnEvent.NewStartWriteRequest(true) : StartWriteKeepEvent);

    public void StartReadRequest() => Feed(StartReadRequestEvent);

    public void StartReadResponse(int? slot) => Feed(ConnEvent.NewStartReadResponse(Slot(slot)));

    public void StartWriteResponse(int? slot, bool closes) => Feed(ConnEvent.NewStartWriteResponse(Slot(slot), closes));

    public void Wrote(int slot) => Feed(ConnEvent.NewWrote(slot));

    public void HeadRead(int slot, bool closes, bool expectsContinue) => Feed(ConnEvent.NewHeadRead(slot, closes, expectsContinue));

    /// <summary>The operation failed with an exception of the transport (or a cancellation, or a hook).</summary>
    public void Failed(ExchangePhase phase, int slot, Exception cause) => Feed(ConnEvent.NewFailed(ToCore(phase), slot, ConnError.NewTransport(cause)));

    /// <summary>The operation read bytes that break HTTP/1.x.</summary>
    public void Malformed(ExchangePhase phase, int slot, HttpError error) => Feed(ConnEvent.NewFailed(ToCore(phase), slot, ConnError.NewMalformed(error)));

    /// <summary>The previous body was longer than the drain limit.</summary>
    public void DrainLimitExceeded(ExchangePhase phase, int slot, long limit) => Feed(ConnEvent.NewFailed(ToCore(phase), slot, ConnError.NewDrainLimit(limit)));

    /// <summary>The operation failed because the reading side already had (its sticky error, again).</summary>
    public void FailedAsReadSide(ExchangePhase phase, int slot, Exception cause)
    {
        var read = Connection.readError(state);
        Feed(ConnEvent.NewFailed(ToCore(phase), slot, read.IsSome ? read.Value : ConnError.NewTransport(cause)));
    }

    public void InputEnded(int slot, long buffered) => Feed(ConnEvent.NewInputEnded(slot, buffered));

    public void BodyFailed(Exception cause) =>
        Feed(ConnEvent.NewBodyFailed(cause is MalformedMessageException m ? ConnError.NewMalformed(m.Error) : ConnError.NewTransport(cause)));

    /// <summary>The send loop failed: the writing side is broken with <paramref name="cause"/>.</summary>
    public void SendFailed(Exception cause) => Feed(ConnEvent.NewSendFailed(ConnError.NewTransport(cause)));

    public void BodyWanted(int slot) => Feed(ConnEvent.NewBodyWanted(slot));

    public void ContinueWritten(int slot, Exception? failure) =>
        Feed(ConnEvent.NewContinueWritten(slot, failure is null ? FSharpValueOption<ConnError>.ValueNone : FSharpValueOption<ConnError>.NewValueSome(ConnError.NewTransport(failure))));

    public void StopWriting() => Feed(ConnEvent.StopWriting);

    public void CloseRequested() => Feed(ConnEvent.CloseRequested);

    public void HijackRequested() => Feed(ConnEvent.HijackRequested);

    private static FSharpValueOption<int> Slot(int? slot) => slot is { } s ? FSharpValueOption<int>.NewValueSome(s) : FSharpValueOption<int>.ValueNone;

    private static Phase ToCore(ExchangePhase phase) => phase == ExchangePhase.Request ? Phase.RequestPhase : Phase.ResponsePhase;

    private void Feed(ConnEvent e)
    {
        var result = Connection.stepValue(state, e);
        if (result.IsError) throw CoreAdapter.ToException(result.ErrorValue, objectName);
        var (next, produced) = result.ResultValue;
        state = next;
        actions.Clear();
        for (var list = produced; !list.IsEmpty; list = list.Tail) actions.Add(ToAction(list.Head));
    }

    private static CoreAction ToAction(ConnAction a) => a switch
    {
        ConnAction.Grant g => new CoreAction(CoreActionKind.Grant, g.Phase.IsRequestPhase ? ExchangePhase.Request : ExchangePhase.Response, g.Slot,
            g.Verdict is Verdict.Proceed p ? new TurnVerdict(true, p.EndsConnection, null) : new TurnVerdict(false, false, ((Verdict.Refuse)g.Verdict).Error),
            false),
        ConnAction.Assigned s => new CoreAction(CoreActionKind.Assigned, default, s.Slot, default, false),
        ConnAction.Deliver d => new CoreAction(CoreActionKind.Deliver, default, d.Slot, default, d.IsLast),
        ConnAction.SendContinue c => new CoreAction(CoreActionKind.SendContinue, ExchangePhase.Response, c.Slot, default, false),
        _ when a.IsCloseTransport => new CoreAction(CoreActionKind.CloseTransport, default, 0, default, false),
        _ => new CoreAction(CoreActionKind.HandOver, default, 0, default, false),
    };
}

/// <summary>The outcome of one incremental head parse, in plain C#.</summary>
internal readonly record struct HeadParse<T>(bool Complete, Parsed<T>? Parsed, long Consumed, HttpError? Error);

/// <summary>The outcome of one body decoding step.</summary>
internal enum BodyReadKind
{
    /// <summary>Read more input and call again.</summary>
    More,

    /// <summary>Body bytes in <c>Data</c>.</summary>
    Data,

    /// <summary>The body ended; its trailers are in <c>Trailers</c>.</summary>
    End,

    /// <summary>The body is broken: <c>Error</c> says how.</summary>
    Error,
}

/// <summary>One body decoding step, in plain C#.</summary>
internal readonly record struct BodyRead(BodyReadKind Kind, ReadOnlySequence<byte> Data, long Consumed, Headers? Trailers, HttpError? Error);

/// <summary>Calls into the core, with F# values turned into plain .NET ones.</summary>
internal static class CoreAdapter
{
    // ---- Errors -------------------------------------------------------------------------------

    /// <summary>The exception a <see cref="ConnError"/> surfaces as.</summary>
    public static Exception ToException(ConnError error, string objectName) => error switch
    {
        ConnError.Malformed m => new MalformedMessageException(m.Error),
        ConnError.Transport t => t.Cause is OperationCanceledException
            ? new IOException("an earlier operation on this connection was cancelled part way; the connection is broken", t.Cause)
            : new IOException($"the connection broke earlier: {t.Cause.Message}", t.Cause),
        ConnError.DrainLimit d => new DrainLimitException(d.Limit),
        ConnError.InvalidEvent i => new InvalidOperationException(i.Reason),
        _ when error.IsPersistEof => new PersistEofException(),
        _ when error.IsClosedByUser => new ConnectionClosedException(),
        _ when error.IsUseAfterClose => new ObjectDisposedException(objectName, "i/o operation on closed connection"),
        _ when error.IsPipelineMismatch => new PipelineException(),
        _ when error.IsEndOfInput => new EndOfStreamException("the peer closed the connection where a new message would start"),
        _ => new ProtocolException(error.ToString()),
    };

    // ---- Versions and fields ------------------------------------------------------------------

    public static CoreVersion ToCore(Version v) => v.Major == 1 && v.Minor == 0 ? CoreVersion.Http10 : CoreVersion.Http11;

    public static Version FromCore(CoreVersion v) => v.IsHttp10 ? System.Net.HttpVersion.Version10 : System.Net.HttpVersion.Version11;

    /// <summary>Appends the fields of <paramref name="headers"/> in their order, one line per name (values
    /// joined by the header's own separator), except fields whose values the core keeps apart (Set-Cookie).</summary>
    public static void AddFields(List<HeaderField> into, HttpHeaders headers, string? skip = null)
    {
        foreach (var (name, values) in headers.NonValidated)
        {
            if (skip is not null && name.Equals(skip, StringComparison.OrdinalIgnoreCase)) continue;
            if (Headers.KeepsValuesApart(name))
            {
                foreach (var v in values) into.Add(new HeaderField(name, v));
            }
            else
            {
                into.Add(new HeaderField(name, values.ToString()));
            }
        }
    }

    /// <summary>The core's fields for .NET headers (trailers).</summary>
    public static Headers ToFields(HttpHeaders headers)
    {
        var fields = new List<HeaderField>();
        AddFields(fields, headers);
        return Headers.OfSeq(fields);
    }

    private static Framing.OutgoingBody Describe(HttpContent? content, bool? chunked)
    {
        if (content is null) return Framing.OutgoingBody.Absent;
        if (chunked == true) return Framing.OutgoingBody.Unknown;
        return content.Headers.ContentLength is long n ? Framing.OutgoingBody.NewKnown(n) : Framing.OutgoingBody.Unknown;
    }

    [ThreadStatic] private static List<HeaderField>? scratch;

    /// <summary>This thread's empty list for gathering fields before the core copies them into its own head (one list
    /// per thread instead of one per message).</summary>
    private static List<HeaderField> TakeScratch()
    {
        var list = scratch ??= new List<HeaderField>(16);
        list.Clear();
        return list;
    }

    private static ArgumentException Invalid(string what, HttpError e) => new($"{what}: {e.Message}");

    // ---- Heads: prepare to write, interpret what was read ---------------------------------------

    /// <summary>The head to write for <paramref name="request"/> (<c>Exchange.prepareRequest</c>); throws
    /// <see cref="ArgumentException"/> when it cannot be put on the wire.</summary>
    public static OutgoingRequest PrepareRequest(HttpRequestMessage request, bool absoluteForm)
    {
        var uri = request.RequestUri ?? throw new ArgumentException("the request has no RequestUri", nameof(request));
        if (request is ForwardedRequestMessage { Fields: { } forwarded } f)
        {
            var direct = Exchange.prepareRequest(request.Method.Method, uri, ToCore(request.Version), absoluteForm, f.Host, forwarded,
                Describe(request.Content, null));
            if (direct.IsError) throw Invalid("the request cannot be written", direct.ErrorValue);
            return direct.ResultValue;
        }
        var fields = TakeScratch();
        AddFields(fields, request.Headers, "Host");
        if (request.Content is { } content) AddFields(fields, content.Headers);
        var prepared = Exchange.prepareRequest(request.Method.Method, uri, ToCore(request.Version), absoluteForm, request.Headers.Host, fields,
            Describe(request.Content, request.Headers.TransferEncodingChunked));
        fields.Clear();
        if (prepared.IsError) throw Invalid("the request cannot be written", prepared.ErrorValue);
        return prepared.ResultValue;
    }

    /// <summary>The head to write for <paramref name="response"/> to <paramref name="request"/>
    /// (<c>Exchange.prepareResponse</c>); throws <see cref="ArgumentException"/> when it cannot be written.</summary>
    public static OutgoingResponse PrepareResponse(HttpRequestMessage request, HttpResponseMessage response)
    {
        var fields = TakeScratch();
        AddFields(fields, response.Headers);
        AddFields(fields, response.Content.Headers);
        var prepared = Exchange.prepareResponse(request.Method.Method, ToCore(request.Version), ToCore(response.Version), (int)response.StatusCode,
            response.ReasonPhrase ?? "", fields, Describe(response.Content, response.Headers.TransferEncodingChunked));
        fields.Clear();
        if (prepared.IsError) throw Invalid("the response cannot be written", prepared.ErrorValue);
        return prepared.ResultValue;
    }

    /// <summary><paramref name="head"/> saying that it is the last message on its connection.</summary>
    public static ResponseHead MarkLast(ResponseHead head) => new(head.Version, head.Status, head.Reason, Persist.markLast(head.Headers));

    /// <summary>The bytes of <c>100 Continue</c>.</summary>
    public static readonly byte[] ContinueBytes = Serializer.responseBytes(Continue.head).ResultValue;

    /// <summary>Interprets a request head read (<c>Exchange.readRequest</c>): null and the error when it is refused.</summary>
    public static IncomingRequest? ReadRequest(RequestHead head, ParserSettings settings, out HttpError? error)
    {
        var r = Exchange.readRequestWithin(settings.Limits, head);
        error = r.IsError ? r.ErrorValue : null;
        return r.IsOk ? r.ResultValue : null;
    }

    /// <summary>Interprets a response head read (<c>Exchange.readResponse</c>): null and the error when it is refused.</summary>
    public static IncomingResponse? ReadResponse(string requestMethod, ResponseHead head, out HttpError? error)
    {
        var r = Exchange.readResponse(requestMethod, head);
        error = r.IsError ? r.ErrorValue : null;
        return r.IsOk ? r.ResultValue : null;
    }

    /// <summary>True for a 101, or a 2xx to CONNECT: the connection now carries another protocol.</summary>
    public static bool IsSwitching(IncomingResponse response) => response.Kind.IsSwitching;

    /// <summary>True for a response the client reads past (1xx except 101).</summary>
    public static bool IsInterim(IncomingResponse response) => response.Kind.IsInterim;

    /// <summary>True for a head the client reads past (1xx except 101), judged by its status alone.</summary>
    public static bool IsInterim(ResponseHead head) => Continue.isInterim(head.Status);

    /// <summary>True for <c>100 Continue</c> itself.</summary>
    public static bool IsContinue(ResponseHead head) => head.Status == Continue.head.Status;

    /// <summary>Counts one more interim response against the limits; the error when past them.</summary>
    public static HttpError? CountInterim(ParserSettings settings, ref int count, ref long bytes, long headBytes)
    {
        var r = Continue.countInterim(settings.Limits, count, bytes, headBytes);
        if (r.IsError) return r.ErrorValue;
        (count, bytes) = (r.ResultValue.Item1, r.ResultValue.Item2);
        return null;
    }

    /// <summary>The effective request URI of a request read (<c>Message.effectiveUri</c>): absolute where
    /// System.Uri takes it, else the target as a relative reference, else null.</summary>
    public static Uri? RequestUri(RequestHead head, bool overTls)
    {
        var text = Message.effectiveUri(overTls ? "https" : "http", head);
        if (text.Length > 0 && Uri.TryCreate(text, UriKind.Absolute, out var absolute)) return absolute;
        return Uri.TryCreate(head.Target, UriKind.Relative, out var relative) ? relative : null;
    }

    // ---- Parsing heads --------------------------------------------------------------------------

    private static HeadParse<T> ToHeadParse<T>(FSharpResult<Incremental<Parsed<T>>, HttpError> r)
    {
        if (r.IsError) return new HeadParse<T>(false, null, 0, r.ErrorValue);
        var inc = r.ResultValue;
        return inc.IsComplete ? new HeadParse<T>(true, inc.Value, inc.Consumed, null) : default;
    }

    /// <summary>Parses a request head from the start of <paramref name="input"/>.</summary>
    public static HeadParse<RequestHead> ParseRequestHead(ParserSettings settings, ReadOnlySequence<byte> input) =>
        ToHeadParse(Parser.parseRequestHead(settings, input));

    /// <summary>Parses a response head from the start of <paramref name="input"/>.</summary>
    public static HeadParse<ResponseHead> ParseResponseHead(ParserSettings settings, ReadOnlySequence<byte> input) =>
        ToHeadParse(Parser.parseResponseHead(settings, input));

    // ---- Bodies ---------------------------------------------------------------------------------

    /// <summary>A decoder for a body framed as <paramref name="framing"/>.</summary>
    public static BodyDecoder NewDecoder(Framing.BodyLength framing) => Body.decoder(framing);

    /// <summary>One decoding step (<c>Body.decode</c>); <paramref name="decoder"/> moves on as if all the
    /// data were taken.</summary>
    public static BodyRead Decode(ParserSettings settings, bool isRequest, ref BodyDecoder decoder, ReadOnlySequence<byte> input, bool inputEnded)
    {
        var r = Body.decode(settings, isRequest, decoder, input, inputEnded);
        if (r.IsError) return new BodyRead(BodyReadKind.Error, default, 0, null, r.ErrorValue);
        var step = r.ResultValue;
        decoder = step.Decoder;
        return step.Output.Tag switch
        {
            BodyOutput.Tags.Data => new BodyRead(BodyReadKind.Data, step.Output.Bytes, step.Consumed, null, null),
            BodyOutput.Tags.EndOfBody => new BodyRead(BodyReadKind.End, default, step.Consumed, step.Output.Trailers, null),
            _ => new BodyRead(BodyReadKind.More, default, step.Consumed, null, null),
        };
    }

    /// <summary>How many body bytes may be read straight from the transport, bypassing the decoder's input
    /// (<c>Body.passThrough</c>): 0 when framing sits among the bytes (chunked) or the body ended.</summary>
    public static long PassThrough(in BodyDecoder decoder) => Body.passThrough(decoder);

    /// <summary>Un-takes the last <paramref name="n"/> bytes of the data just decoded.</summary>
    public static void GiveBack(ref BodyDecoder decoder, long n) => decoder = Body.giveBack(n, decoder);

    /// <summary>An encoder for a body framed as <paramref name="framing"/>.</summary>
    public static BodyEncoder NewEncoder(Framing.BodyLength framing) => Body.encoder(framing);

    /// <summary>True when a body framed as <paramref name="framing"/> puts bytes on the wire.</summary>
    public static bool SendsBody(Framing.BodyLength framing) => Framing.sendsBody(framing);

    /// <summary>True when a message framed as <paramref name="framing"/> has a body at all (possibly empty).</summary>
    public static bool HasBody(Framing.BodyLength framing) => !framing.IsNoBody;

    /// <summary>True when a body framed as <paramref name="framing"/> ends with a last-chunk and trailers.</summary>
    public static bool EndsWithTrailers(Framing.BodyLength framing) => framing.IsChunked;

    /// <summary>Frames <paramref name="data"/> into <paramref name="writer"/>; the error when it would
    /// overrun the announced length.</summary>
    public static HttpError? Encode(IBufferWriter<byte> writer, ref BodyEncoder encoder, ReadOnlySpan<byte> data)
    {
        var r = Body.write(writer, encoder, data);
        if (r.IsError) return r.ErrorValue;
        encoder = r.ResultValue;
        return null;
    }

    /// <summary>The error when the body fell short of its announced length; null when it went out whole.</summary>
    public static HttpError? FinishEncoding(BodyEncoder encoder)
    {
        var r = Body.finish(encoder);
        return r.IsError ? r.ErrorValue : null;
    }

    /// <summary>The last-chunk with <paramref name="trailers"/>; throws when a trailer cannot be written.</summary>
    public static byte[] LastChunk(Headers trailers)
    {
        var r = Chunked.lastChunk(trailers);
        if (r.IsError) throw new InvalidOperationException($"the trailers cannot be written: {r.ErrorValue.Message}");
        return r.ResultValue;
    }

    /// <summary>Writes a head into <paramref name="writer"/>; throws when it cannot be written (it was
    /// validated when prepared, so only a bug gets here).</summary>
    public static void WriteHead(IBufferWriter<byte> writer, RequestHead head)
    {
        var r = Serializer.writeRequest(writer, head);
        if (r.IsError) throw new InvalidOperationException(r.ErrorValue.Message);
    }

    /// <inheritdoc cref="WriteHead(IBufferWriter{byte}, RequestHead)"/>
    public static void WriteHead(IBufferWriter<byte> writer, ResponseHead head)
    {
        var r = Serializer.writeResponse(writer, head);
        if (r.IsError) throw new InvalidOperationException(r.ErrorValue.Message);
    }

    /// <summary>The bytes of a head, as <see cref="WriteHead(IBufferWriter{byte}, RequestHead)"/> writes it.</summary>
    public static byte[] HeadBytes(RequestHead head)
    {
        var r = Serializer.requestBytes(head);
        if (r.IsError) throw new InvalidOperationException(r.ErrorValue.Message);
        return r.ResultValue;
    }

    /// <inheritdoc cref="HeadBytes(RequestHead)"/>
    public static byte[] HeadBytes(ResponseHead head)
    {
        var r = Serializer.responseBytes(head);
        if (r.IsError) throw new InvalidOperationException(r.ErrorValue.Message);
        return r.ResultValue;
    }

    /// <summary>Chunked framing: chunks until the last-chunk, then trailers.</summary>
    public static Framing.BodyLength ChunkedFraming => Framing.BodyLength.Chunked;

    /// <summary>How the body of <paramref name="head"/>, a request read off the wire, is framed (<c>Framing.requestBody</c>;
    /// <c>NoBody</c> when its framing is invalid). No limit applies: the connection that read it applied its own.</summary>
    public static Framing.BodyLength RequestFraming(RequestHead head) =>
        Framing.requestBody(head) is { IsOk: true } r ? r.ResultValue : Framing.BodyLength.NoBody;

    /// <summary>How the body of <paramref name="head"/>, a response to <paramref name="requestMethod"/> read off the
    /// wire, is framed (<c>Framing.responseBody</c>; <c>NoBody</c> when its framing is invalid).</summary>
    public static Framing.BodyLength ResponseFraming(string requestMethod, ResponseHead head) =>
        Framing.responseBody(requestMethod, head) is { IsOk: true } r ? r.ResultValue : Framing.BodyLength.NoBody;

    // ---- Client routing and retries -------------------------------------------------------------

    /// <summary>How to reach <paramref name="scheme"/> with or without a proxy: whether the connection is
    /// made to the proxy, whether it tunnels with CONNECT, whether targets are absolute-form.</summary>
    public static (bool ToProxy, bool Tunnel, bool AbsoluteForm) Route(string scheme, bool hasProxy)
    {
        var route = Routing.route(scheme, hasProxy);
        return (Routing.connectsToProxy(route), route.IsTunnel, Routing.absoluteForm(route));
    }

    /// <summary>True for the schemes Transport speaks to (http, https).</summary>
    public static bool SupportsScheme(string scheme) => Routing.supportsScheme(scheme);

    /// <summary>True when a connection for <paramref name="scheme"/> is made over TLS.</summary>
    public static bool UsesTls(string scheme) => Routing.usesTls(scheme);

    /// <summary>The HTTP/1.x version to send <paramref name="request"/> as (<c>Routing.wireVersion</c>); throws
    /// <see cref="HttpRequestException"/> when it insists on HTTP/2 or later.</summary>
    public static Version WireVersion(HttpRequestMessage request)
    {
        var r = Routing.wireVersion(request.Version.Major, request.Version.Minor, request.VersionPolicy == HttpVersionPolicy.RequestVersionExact);
        if (r.IsError) throw new HttpRequestException(r.ErrorValue);
        return FromCore(r.ResultValue);
    }

    /// <summary>True when a response to CONNECT opened the tunnel.</summary>
    public static bool ConnectSucceeded(int status) => Message.connectSucceeded(status);

    /// <summary>True when the exception says the connection itself failed (reset, closed, end of input, a
    /// failed send), not the message, a cancellation or a hook.</summary>
    public static bool IsConnectionLost(Exception ex) =>
        ex is EndOfStreamException or System.Net.Sockets.SocketException
        || (ex is IOException && ex is not ProtocolException);

    /// <summary>The core's retry rule (<c>Routing.shouldRetry</c>) for a failed attempt.</summary>
    public static bool ShouldRetry(HttpRequestMessage request, bool reused, bool connectionLost, bool gotResponseBytes) =>
        Routing.shouldRetry(new FailedAttempt(reused, connectionLost, gotResponseBytes, request.Method.Method, HasIdempotencyKey(request),
            IsReplayable(request)));

    /// <summary>True when <paramref name="request"/> may be sent a second time (<c>Routing.mayResend</c>).</summary>
    public static bool MayResend(HttpRequestMessage request)
    {
        var method = request.Method.Method;
        var replayable = IsReplayable(request);
        // A key can only turn "no" into "yes": look for one (a header lookup) only when the answer without it is no.
        return Routing.mayResend(method, false, replayable) || Routing.mayResend(method, HasIdempotencyKey(request), replayable);
    }

    /// <summary>True when an idle connection is polled before a request goes out on it
    /// (<c>Routing.probesIdleConnection</c>).</summary>
    public static bool ProbesIdleConnection(TimeSpan idleFor, TimeSpan probeAfter, bool resendable) =>
        Routing.probesIdleConnection(idleFor, probeAfter, resendable);

    private static bool HasIdempotencyKey(HttpRequestMessage request)
    {
        var hasKey = false;
        foreach (var name in Routing.idempotencyKeyFields) hasKey |= request.Headers.Contains(name);
        return hasKey;
    }

    private static bool IsReplayable(HttpRequestMessage request) => request.Content is null or ByteArrayContent or ReadOnlyMemoryContent;

    // ---- Traces ---------------------------------------------------------------------------------

    /// <summary>The layers of <paramref name="newer"/> over <paramref name="older"/> (<c>Trace.compose</c>).</summary>
    public static ClientTrace[] ComposeLayers(IEnumerable<ClientTrace> newer, IEnumerable<ClientTrace> older) =>
        ListModule.ToArray(Trace.compose(ListModule.OfSeq(newer), ListModule.OfSeq(older)));
}
