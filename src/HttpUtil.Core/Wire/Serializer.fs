/// Head serializers: exactly the bytes a peer should see, in the head's field order and casing.
/// A head that would be invalid or ambiguous on the wire (CR or LF in a value, a name that is not a
/// token, a target with spaces) is an error: nothing is written, so no field can be injected.
module HttpUtil.Core.Serializer

open System
open System.Buffers
open System.Text

let private invalid message =
    Error(HttpError.create ErrorKind.InvalidHead 0L message)

/// Checks that every field of a section can go on the wire: names are tokens, values hold no CR,
/// LF or other control char, no char above 0xFF and no whitespace at an end.
let validateFields (headers: Headers) : Result<unit, HttpError> =
    let fields = headers.AsSpan()
    let mutable badName = -1
    let mutable badValue = -1
    let mutable i = 0

    while badName < 0 && i < fields.Length do
        if not (CharClass.isToken fields[i].Name) then
            badName <- i

        i <- i + 1

    i <- 0

    while badName < 0 && badValue < 0 && i < fields.Length do
        if not (CharClass.isFieldValue fields[i].Value) then
            badValue <- i

        i <- i + 1

    if badName >= 0 then
        invalid (sprintf "field name %A is not a token (RFC 9110 section 5.1)" fields[badName].Name)
    elif badValue >= 0 then
        invalid (
            sprintf
                "the value of field %s holds a control character, a char above 0xFF, or whitespace at an end (RFC 9110 section 5.5)"
                fields[badValue].Name
        )
    else
        Ok()

/// Checks that a request head can be written as it is.
let validateRequest (head: RequestHead) : Result<unit, HttpError> =
    if not (CharClass.isToken head.Method) then
        invalid (sprintf "method %A is not a token (RFC 9110 section 9.1)" head.Method)
    elif
        String.IsNullOrEmpty head.Target
        || not (CharClass.forAll CharClass.isVchar head.Target)
    then
        invalid (
            sprintf
                "request-target %A is empty or holds a char that is not visible ASCII (RFC 9112 section 3.2)"
                head.Target
        )
    else
        match Message.classifyTarget head.Method head.Target with
        | Error why -> invalid why
        | Ok form when form <> head.Form ->
            invalid (sprintf "request-target %s is in %A form, not %A" head.Target form head.Form)
        | Ok _ -> validateFields head.Headers

/// Checks that a response head can be written as it is.
let validateResponse (head: ResponseHead) : Result<unit, HttpError> =
    if head.Status < 100 || head.Status > 999 then
        invalid (sprintf "status code %d is not three digits from 100 (RFC 9110 section 15)" head.Status)
    elif
        obj.ReferenceEquals(head.Reason, null)
        || not (CharClass.forAll CharClass.isFieldValueChar head.Reason)
    then
        invalid "the reason-phrase holds a control character or a char above 0xFF (RFC 9112 section 4)"
    else
        validateFields head.Headers

/// The bytes a field section takes on the wire, final empty line included.
let internal fieldsLength (headers: Headers) =
    let mutable n = 2 // final CRLF

    for f in headers.AsSpan() do
        n <- n + f.Name.Length + 2 + f.Value.Length + 2

    n

let private put (s: string) (dest: Span<byte>) (at: int) =
    Encoding.Latin1.GetBytes(s.AsSpan(), dest.Slice(at)) + at

/// Writes a field section and its final empty line into `dest` from index `at` (which must have
/// `fieldsLength headers` bytes of room); returns the index after it. Does not validate.
let internal writeFields (headers: Headers) (dest: Span<byte>) (at: int) =
    let mutable i = at

    for f in headers.AsSpan() do
        i <- put f.Name dest i
        dest[i] <- byte ':'
        dest[i + 1] <- byte ' '
        i <- put f.Value dest (i + 2)
        dest[i] <- 13uy
        dest[i + 1] <- 10uy
        i <- i + 2

    dest[i] <- 13uy
    dest[i + 1] <- 10uy
    i + 2

/// Writes a request head to `writer`; returns the bytes written.
let writeRequest (writer: IBufferWriter<byte>) (head: RequestHead) : Result<int, HttpError> =
    match validateRequest head with
    | Error e -> Error e
    | Ok() ->
        let v = head.Version.Text

        let total =
            head.Method.Length
            + 1
            + head.Target.Length
            + 1
            + v.Length
            + 2
            + fieldsLength head.Headers

        let span = writer.GetSpan(total)
        let mutable i = put head.Method span 0
        span[i] <- byte ' '
        i <- put head.Target span (i + 1)
        span[i] <- byte ' '
        i <- put v span (i + 1)
        span[i] <- 13uy
        span[i + 1] <- 10uy
        i <- writeFields head.Headers span (i + 2)
        writer.Advance(i)
        Ok i

/// Writes a response head to `writer`; returns the bytes written.
let writeResponse (writer: IBufferWriter<byte>) (head: ResponseHead) : Result<int, HttpError> =
    match validateResponse head with
    | Error e -> Error e
    | Ok() ->
        let v = head.Version.Text
        let total = v.Length + 5 + head.Reason.Length + 2 + fieldsLength head.Headers
        let span = writer.GetSpan(total)
        let mutable i = put v span 0
        span[i] <- byte ' '
        span[i + 1] <- byte (48 + head.Status / 100)
        span[i + 2] <- byte (48 + head.Status / 10 % 10)
        span[i + 3] <- byte (48 + head.Status % 10)
        span[i + 4] <- byte ' '
        i <- put head.Reason span (i + 5)
        span[i] <- 13uy
        span[i + 1] <- 10uy
        i <- writeFields head.Headers span (i + 2)
        writer.Advance(i)
        Ok i

let private toBytes write head =
    let w = ArrayBufferWriter<byte>(256)

    write (w :> IBufferWriter<byte>) head
    |> Result.map (fun _ -> w.WrittenSpan.ToArray())

/// A request head as bytes.
let requestBytes (head: RequestHead) = toBytes writeRequest head

/// A response head as bytes.
let responseBytes (head: ResponseHead) = toBytes writeResponse head
