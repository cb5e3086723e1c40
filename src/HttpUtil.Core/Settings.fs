namespace HttpUtil.Core

/// Explicit bounds on everything the parsers read. Exceeding one is a distinct error, never an
/// unbounded read. Defaults follow Kestrel's (32 KiB heads, 100 fields, 8 KiB lines).
type Limits =
    {
        /// Most bytes in a head, start line and terminating empty line included. Default 32 KiB.
        MaxHeadBytes: int
        /// Most field lines in a head (and in a trailer section). Default 100.
        MaxHeaderCount: int
        /// Most bytes in one line of a head, line ending excluded. Default 8 KiB.
        MaxLineLength: int
        /// Most hex digits in a chunk-size. Default 16 (larger sizes cannot fit an Int64 anyway).
        MaxChunkSizeDigits: int
        /// Most bytes in a chunk-size line, extensions included. Default 4 KiB.
        MaxChunkLineLength: int
        /// Most bytes in a trailer section, terminating empty line included. Default 16 KiB.
        MaxTrailerBytes: int
        /// Most interim (1xx) responses a client reads past before the final one. Default 16.
        /// Their bytes also count, with the final head's, against `MaxHeadBytes`.
        MaxInterimResponses: int
        /// Most bytes in a request body (after removing the chunked framing). A Content-Length above it is refused
        /// when the head is read; a chunked body when it grows past it. Default 30,000,000, Kestrel's.
        /// `Int64.MaxValue` for none. Responses are not limited by it.
        MaxRequestBodyBytes: int64
    }

    /// The default limits.
    static member Default =
        {
            MaxHeadBytes = 32 * 1024
            MaxHeaderCount = 100
            MaxLineLength = 8 * 1024
            MaxChunkSizeDigits = 16
            MaxChunkLineLength = 4 * 1024
            MaxTrailerBytes = 16 * 1024
            MaxInterimResponses = 16
            MaxRequestBodyBytes = 30_000_000L
        }

    // C# cannot use `with` on F# records: one member per field.

    /// These limits with another `MaxHeadBytes`.
    member this.WithMaxHeadBytes(value: int) = { this with MaxHeadBytes = value }

    /// These limits with another `MaxHeaderCount`.
    member this.WithMaxHeaderCount(value: int) = { this with MaxHeaderCount = value }

    /// These limits with another `MaxLineLength`.
    member this.WithMaxLineLength(value: int) = { this with MaxLineLength = value }

    /// These limits with another `MaxChunkSizeDigits`.
    member this.WithMaxChunkSizeDigits(value: int) =
        { this with MaxChunkSizeDigits = value }

    /// These limits with another `MaxChunkLineLength`.
    member this.WithMaxChunkLineLength(value: int) =
        { this with MaxChunkLineLength = value }

    /// These limits with another `MaxTrailerBytes`.
    member this.WithMaxTrailerBytes(value: int) = { this with MaxTrailerBytes = value }

    /// These limits with another `MaxRequestBodyBytes`.
    member this.WithMaxRequestBodyBytes(value: int64) =
        { this with
            MaxRequestBodyBytes = value
        }

    /// These limits with another `MaxInterimResponses`.
    member this.WithMaxInterimResponses(value: int) =
        { this with
            MaxInterimResponses = value
        }

/// Repairs a recipient may make under RFC 9112; each is off by default (strict parsing).
type Lenience =
    {
        /// Accept a LF without CR as a line ending (RFC 9112 section 2.2 lets a recipient do so).
        AllowBareLf: bool
        /// In responses, replace each obs-fold by one SP instead of rejecting it (RFC 9112 section 5.2).
        /// Obs-fold in requests is always rejected.
        AllowObsFoldInResponses: bool
    }

    /// Strict parsing: no repairs.
    static member Strict =
        {
            AllowBareLf = false
            AllowObsFoldInResponses = false
        }

    /// This lenience with another `AllowBareLf`.
    member this.WithAllowBareLf(value: bool) = { this with AllowBareLf = value }

    /// This lenience with another `AllowObsFoldInResponses`.
    member this.WithAllowObsFoldInResponses(value: bool) =
        { this with
            AllowObsFoldInResponses = value
        }

/// Limits plus lenience: everything that changes how input is parsed.
type ParserSettings =
    {
        Limits: Limits
        Lenience: Lenience
    }

    /// Default limits, strict parsing.
    static member Default =
        {
            Limits = Limits.Default
            Lenience = Lenience.Strict
        }

    /// These settings with other limits (for C#, where `with` does not apply to F# records).
    member this.WithLimits(limits: Limits) = { this with Limits = limits }

    /// These settings with other lenience (for C#, where `with` does not apply to F# records).
    member this.WithLenience(lenience: Lenience) = { this with Lenience = lenience }
