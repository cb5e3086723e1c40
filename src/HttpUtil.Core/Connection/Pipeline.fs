namespace HttpUtil.Core

/// One lane of Go's `textproto.Pipeline`: operations hold numbered tickets and run strictly in
/// ticket order, one at a time. A lane knows nothing of HTTP; a connection has two (requests and
/// responses) and every exchange holds the same ticket in both.
///
/// Rules:
/// - the ticket whose turn it is starts at once when nothing runs; any other ticket waits;
/// - when the running ticket ends (finished or refused) the turn moves to the next ticket;
/// - a ticket that will never ask for its turn is passed over (its request failed, so its
///   response never comes) and the turn skips it.
[<Struct>]
type Lane =
    {
        /// The ticket served next, or served now when `Running`.
        Turn: int
        /// True while the ticket `Turn` runs.
        Running: bool
        /// Tickets that asked before their turn, each with the flag it asked with (for a
        /// connection: "this message ends the connection").
        Waiting: Map<int, bool>
        /// Tickets further on that will never ask: the turn skips them.
        PassedOver: Set<int>
    }

/// The turn-taking of one lane (see `Lane`).
module Pipeline =
    /// A lane where ticket 0 is next and nothing waits.
    let empty =
        {
            Turn = 0
            Running = false
            Waiting = Map.empty
            PassedOver = Set.empty
        }

    /// True when `ticket` is the operation running now.
    let isRunning ticket (lane: Lane) = lane.Running && lane.Turn = ticket

    /// True when `ticket` may start at once: it is its turn and nothing runs.
    let isFree ticket (lane: Lane) = not lane.Running && lane.Turn = ticket

    /// True when nothing runs and nothing waits.
    let isIdle (lane: Lane) =
        not lane.Running && lane.Waiting.IsEmpty

    /// The ticket whose turn it is starts running.
    let start (lane: Lane) = { lane with Running = true }

    /// The running ticket stops without giving up its turn (it will run again).
    let pause (lane: Lane) = { lane with Running = false }

    let rec private skipPassed (lane: Lane) =
        if not lane.PassedOver.IsEmpty && lane.PassedOver.Contains lane.Turn then
            skipPassed
                { lane with
                    Turn = lane.Turn + 1
                    PassedOver = lane.PassedOver.Remove lane.Turn
                }
        else
            lane

    /// The current ticket is over (it ran, or was refused): the turn moves to the next ticket that
    /// was not passed over.
    let advance (lane: Lane) =
        skipPassed
            { lane with
                Turn = lane.Turn + 1
                Running = false
            }

    /// `ticket` will never ask for its turn: skip it when the turn comes (now, if it has).
    let passOver ticket (lane: Lane) =
        if not lane.Running && lane.Turn = ticket then
            advance lane
        else
            { lane with
                PassedOver = lane.PassedOver.Add ticket
            }

    /// `ticket` asks for its turn, which has not come: it waits with `flag`.
    let wait ticket flag (lane: Lane) =
        { lane with
            Waiting = lane.Waiting.Add(ticket, flag)
        }

    /// The waiting ticket whose turn has come, with its flag and the lane without it; none when a
    /// ticket runs or the one whose turn it is has not asked yet.
    let tryNext (lane: Lane) =
        if lane.Running || lane.Waiting.IsEmpty then
            ValueNone
        else
            match lane.Waiting.TryGetValue lane.Turn with
            | true, flag ->
                ValueSome(
                    struct (lane.Turn,
                            flag,
                            { lane with
                                Waiting = lane.Waiting.Remove lane.Turn
                            })
                )
            | _ -> ValueNone
