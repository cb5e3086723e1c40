namespace HttpUtil.Core

open System

/// Character classes of RFC 9110 section 5.6.2 and RFC 9112, as total predicates over chars
/// (a char stands for one byte: heads are decoded as Latin-1).
module CharClass =
    let private tcharTable =
        let t = Array.zeroCreate<bool> 128

        for c in "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" do
            t[int c] <- true

        t

    /// tchar: the characters of a token (methods, field names, coding names).
    let isTchar (c: char) = c < '\x80' && tcharTable[int c]

    /// field-vchar, SP or HTAB: what may stand inside a field value (obs-text included).
    let isFieldValueChar (c: char) =
        (c >= ' ' && c <> '\x7f' && c <= '\xff') || c = '\t'

    /// SP or HTAB (RFC 9110 OWS).
    let isOws (c: char) = c = ' ' || c = '\t'

    /// VCHAR: visible ASCII, what a request-target may hold.
    let isVchar (c: char) = c > ' ' && c < '\x7f'

    /// HEXDIG, either case.
    let isHex (c: char) =
        (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')

    /// True when `pred` holds for every char of `s` from index `start` on (a loop: no enumerator,
    /// no closure; these checks run for every field of every message).
    let inline forAllFrom ([<InlineIfLambda>] pred: char -> bool) (start: int) (s: string) =
        let mutable ok = true
        let mutable i = start

        while ok && i < s.Length do
            ok <- pred s[i]
            i <- i + 1

        ok

    /// True when `pred` holds for every char of `s`.
    let inline forAll ([<InlineIfLambda>] pred: char -> bool) (s: string) = forAllFrom pred 0 s

    /// True when every char of a non-empty string is a tchar.
    let isToken (s: string) =
        not (String.IsNullOrEmpty s) && forAll isTchar s

    /// True when a string is a valid field value as it goes on the wire: field-vchar, SP and
    /// HTAB only, and no whitespace at either end (RFC 9110 section 5.5).
    let isFieldValue (s: string) =
        not (obj.ReferenceEquals(s, null))
        && forAll isFieldValueChar s
        && (s.Length = 0 || (not (isOws s[0]) && not (isOws s[s.Length - 1])))

/// One field line: a name (case preserved as received) and its value (OWS trimmed).
[<Struct; CustomEquality; NoComparison>]
type HeaderField =
    {
        Name: string
        Value: string
    }

    override this.ToString() = this.Name + ": " + this.Value

    override this.Equals(o) =
        match o with
        | :? HeaderField as f -> String.Equals(this.Name, f.Name) && String.Equals(this.Value, f.Value)
        | _ -> false

    override this.GetHashCode() = HashCode.Combine(this.Name, this.Value)

    interface IEquatable<HeaderField> with
        member this.Equals f =
            String.Equals(this.Name, f.Name) && String.Equals(this.Value, f.Value)

/// An immutable, ordered, case-preserving list of field lines. Lookups compare names
/// case-insensitively (ASCII); repeated fields keep their order. Every "change" returns a new value.
[<Sealed>]
type Headers private (fields: HeaderField[]) =
    static let empty = Headers(Array.empty)

    /// The empty list.
    static member Empty = empty

    /// A list that takes ownership of `fields` (the caller must not change the array afterwards).
    static member internal Own(fields: HeaderField[]) =
        if fields.Length = 0 then empty else Headers(fields)

    /// A list holding a copy of `fields`, in order.
    static member OfSeq(fields: seq<HeaderField>) = Headers.Own(Seq.toArray fields)

    /// A list of (name, value) pairs in order; from C#: `Headers.Of(("Host", "a"), ("Accept", "*/*"))`.
    /// Nothing is validated here: the serializers refuse invalid names and values.
    static member Of([<ParamArray>] pairs: struct (string * string)[]) =
        Headers.Own(pairs |> Array.map (fun struct (n, v) -> { Name = n; Value = v }))

    /// How many field lines.
    member _.Count = fields.Length

    /// True for a field whose values must stay on separate lines, never joined with commas:
    /// Set-Cookie (RFC 9110 section 5.3).
    static member KeepsValuesApart(name: string) =
        String.Equals(name, "Set-Cookie", StringComparison.OrdinalIgnoreCase)

    /// True when at least one field is called `name` (ASCII case-insensitive).
    member _.Contains(name: string) =
        let mutable found = false
        let mutable i = 0

        while not found && i < fields.Length do
            found <- String.Equals(fields[i].Name, name, StringComparison.OrdinalIgnoreCase)
            i <- i + 1

        found

    /// The value of the first field called `name` (ASCII case-insensitive); false and null when there is none.
    member _.TryGetValue(name: string, [<Runtime.InteropServices.Out>] value: byref<string | null>) =
        let mutable i = 0

        while i < fields.Length
              && not (String.Equals(fields[i].Name, name, StringComparison.OrdinalIgnoreCase)) do
            i <- i + 1

        if i < fields.Length then
            value <- fields[i].Value
            true
        else
            value <- null
            false

    /// The values of every field called `name`, in wire order; empty when there is none.
    member _.GetValues(name: string) : string[] =
        let mutable n = 0

        for f in fields do
            if String.Equals(f.Name, name, StringComparison.OrdinalIgnoreCase) then
                n <- n + 1

        if n = 0 then
            Array.Empty()
        else
            let values = Array.zeroCreate n
            let mutable j = 0

            for f in fields do
                if String.Equals(f.Name, name, StringComparison.OrdinalIgnoreCase) then
                    values[j] <- f.Value
                    j <- j + 1

            values

    /// The field line at `index` (0-based, in wire order). Throws ArgumentOutOfRangeException outside 0..Count-1.
    member _.Item
        with get (index: int) =
            if index < 0 || index >= fields.Length then
                raise (ArgumentOutOfRangeException(nameof index))

            fields[index]

    /// The field lines in wire order, as a read-only span over the list's own storage.
    member _.AsSpan() = ReadOnlySpan<HeaderField>(fields)

    /// The field lines in wire order.
    member _.Fields: seq<HeaderField> = fields

    override _.Equals(o) =
        match o with
        | :? Headers as h -> h.AsSpan().SequenceEqual(ReadOnlySpan<HeaderField>(fields))
        | _ -> false

    override _.GetHashCode() =
        let mutable h = HashCode()

        for f in fields do
            h.Add f

        h.ToHashCode()

    override _.ToString() =
        fields |> Array.map string |> String.concat "\r\n"

    interface System.Collections.Generic.IEnumerable<HeaderField> with
        member _.GetEnumerator() =
            (fields :> System.Collections.Generic.IEnumerable<HeaderField>).GetEnumerator()

    interface System.Collections.IEnumerable with
        member _.GetEnumerator() = fields.GetEnumerator()

/// Functions over `Headers`. Names are matched case-insensitively; nothing here throws.
module Headers =
    let private same (a: string) (b: string) =
        String.Equals(a, b, StringComparison.OrdinalIgnoreCase)

    /// The empty list.
    let empty = Headers.Empty

    /// A list of the given (name, value) pairs, in order.
    let ofList (pairs: (string * string) list) =
        pairs |> List.map (fun (n, v) -> { Name = n; Value = v }) |> Headers.OfSeq

    /// The (name, value) pairs in order.
    let toList (h: Headers) =
        h.Fields |> Seq.map (fun f -> f.Name, f.Value) |> List.ofSeq

    /// True when at least one field is called `name`.
    let contains name (h: Headers) = h.Contains name

    /// The value of the first field called `name`, if any.
    let tryGet name (h: Headers) =
        match h.TryGetValue name with
        | true, v -> Some(nonNull v)
        | _ -> None

    /// The values of every field called `name`, in order (empty when there is none).
    let getAll name (h: Headers) = h.GetValues name |> List.ofArray

    /// The list with one more field at the end.
    let add name value (h: Headers) =
        let fields = h.AsSpan()
        let all = Array.zeroCreate (fields.Length + 1)
        fields.CopyTo(Span all)
        all[fields.Length] <- { Name = name; Value = value }
        Headers.Own all

    /// The list without any field called `name` (the same list when there is none: framing
    /// rules remove fields from every message, and usually find nothing to remove).
    let remove name (h: Headers) =
        if not (h.Contains name) then
            h
        else
            let fields = h.AsSpan()
            let kept = ResizeArray(fields.Length)

            for f in fields do
                if not (same f.Name name) then
                    kept.Add f

            Headers.Own(kept.ToArray())

    /// The list with every field called `name` replaced by one `name: value` at the place of the first
    /// (or at the end when there was none). The same list when it already holds exactly that one field.
    let set name value (h: Headers) =
        let fields = h.AsSpan()
        let mutable count = 0
        let mutable first = -1

        for i in 0 .. fields.Length - 1 do
            if same fields[i].Name name then
                count <- count + 1

                if first < 0 then
                    first <- i

        if count = 0 then
            add name value h
        elif
            count = 1
            && String.Equals(fields[first].Value, value)
            && String.Equals(fields[first].Name, name)
        then
            h
        else
            let result = ResizeArray(fields.Length - count + 1)

            for i in 0 .. fields.Length - 1 do
                if i = first then
                    result.Add { Name = name; Value = value }
                elif not (same fields[i].Name name) then
                    result.Add fields[i]

            Headers.Own(result.ToArray())

    /// Splits comma-separated list values of every field called `name` (RFC 9110 section 5.6.1):
    /// elements trimmed of OWS, empty elements dropped, order kept.
    let listValues name (h: Headers) =
        getAll name h
        |> List.collect (fun v -> v.Split(',') |> Array.map (fun s -> s.Trim(' ', '\t')) |> List.ofArray)
        |> List.filter (fun s -> s.Length > 0)

    /// The connection options of the `Connection` fields (RFC 9110 section 7.6.1), lower-cased.
    let connectionTokens (h: Headers) =
        listValues "Connection" h |> List.map (fun s -> s.ToLowerInvariant())

    /// True when the comma-separated list `value` has the element `token` (OWS around elements
    /// ignored, compared case-insensitively). Allocates nothing: it runs for every message.
    let internal listHas (token: string) (value: string) =
        let mutable rest = value.AsSpan()
        let mutable found = false

        while not found && not rest.IsEmpty do
            let comma = rest.IndexOf(',')
            let element = if comma < 0 then rest else rest.Slice(0, comma)
            found <- element.Trim(" \t".AsSpan()).Equals(token.AsSpan(), StringComparison.OrdinalIgnoreCase)

            rest <-
                if comma < 0 then
                    ReadOnlySpan.Empty
                else
                    rest.Slice(comma + 1)

        found

    /// True when a `Connection` field lists `token` (compared case-insensitively).
    let hasConnectionToken (token: string) (h: Headers) =
        let fields = h.AsSpan()
        let mutable found = false
        let mutable i = 0

        while not found && i < fields.Length do
            found <- same fields[i].Name "Connection" && listHas token fields[i].Value
            i <- i + 1

        found

// The same operations as members, for C# (where the module is `HeadersModule`).
type Headers with

    /// This list with one more field, `name: value`, at the end. Nothing is validated here: the
    /// serializers refuse invalid names and values.
    member this.Add(name: string, value: string) = Headers.add name value this

    /// This list without any field called `name` (ASCII case-insensitive).
    member this.Remove(name: string) = Headers.remove name this

    /// This list with every field called `name` replaced by one `name: value` at the place of the
    /// first (at the end when there was none).
    member this.Set(name: string, value: string) = Headers.set name value this

    /// The comma-separated list elements of every field called `name` (RFC 9110 section 5.6.1),
    /// trimmed, empty ones dropped, in order.
    member this.ListValues(name: string) =
        Headers.listValues name this |> Array.ofList

    /// True when a `Connection` field lists `token` (case-insensitively).
    member this.HasConnectionToken(token: string) = Headers.hasConnectionToken token this
