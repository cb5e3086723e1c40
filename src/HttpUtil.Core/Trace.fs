/// How client traces compose (Go's httptrace.WithClientTrace, without its pitfalls). A trace
/// attached to a request is a list of layers, each a trace the caller made; firing a hook runs each
/// layer's hook in list order.
module HttpUtil.Core.Trace

/// The layers of `newer` attached over `older`: newer's first, then older's (Go's order). A layer
/// already present keeps its first place and is not repeated, so attaching the same trace twice
/// neither recurses nor fires twice. Layers compare by reference; neither input changes.
let compose (newer: 'T list) (older: 'T list) : 'T list when 'T: not struct =
    let rec keep (seen: 'T list) (acc: 'T list) (rest: 'T list) =
        match rest with
        | [] -> List.rev acc
        | x :: xs when seen |> List.exists (fun s -> obj.ReferenceEquals(s, x)) -> keep seen acc xs
        | x :: xs -> keep (x :: seen) (x :: acc) xs

    keep [] [] (newer @ older)
