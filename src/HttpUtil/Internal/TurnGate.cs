namespace HttpUtil;

/// <summary>What an event asked of the shell besides granting turns.</summary>
internal readonly record struct StepOutcome(bool SendContinue, bool CloseTransport, bool HandOver);

/// <summary>
/// Go's pipeline turn-taking for one connection, as the shell sees it: operations start by feeding the
/// core an event, then wait (asynchronously) for the core to grant their turn. One lock guards the core's
/// state; nothing waits under it, and waiters are woken after it is released.
/// </summary>
internal sealed class TurnGate(ConnectionMachine machine)
{
    private readonly object gate = new();
    private readonly Dictionary<(ExchangePhase, int), TaskCompletionSource<TurnVerdict>> waiters = new();

    /// <summary>Unanswered requests.</summary>
    public int Pending
    {
        get { lock (gate) return machine.Pending; }
    }

    /// <summary>True when the connection may carry another exchange now.</summary>
    public bool Reusable
    {
        get { lock (gate) return machine.Reusable; }
    }

    /// <summary>The exception a read would fail with because the reading side is done; null while it is open.</summary>
    public Exception? ReadFailure
    {
        get { lock (gate) return machine.ReadFailure; }
    }

    /// <summary>Client: true when the request of <paramref name="slot"/> may wait for <c>100 Continue</c>.</summary>
    public bool MayAwaitContinue(int slot)
    {
        lock (gate) return machine.MayAwaitContinue(slot);
    }

    /// <summary>Feeds one event (<paramref name="feed"/> on the machine with <paramref name="arg"/>), wakes the
    /// operations it grants, and returns what else it asked for.</summary>
    public StepOutcome Step<TArg>(Action<ConnectionMachine, TArg> feed, TArg arg)
    {
        List<(TaskCompletionSource<TurnVerdict>, TurnVerdict)>? wake = null;
        StepOutcome outcome;
        lock (gate)
        {
            feed(machine, arg);
            outcome = Collect(ref wake);
        }
        Wake(wake);
        return outcome;
    }

    /// <summary>
    /// Starts an operation with <paramref name="start"/> and waits for its turn in <paramref name="phase"/>. For an
    /// answer, <paramref name="knownSlot"/> is the slot of its request; otherwise the core assigns one. Returns the
    /// slot and whether the message written ends the connection; a refused operation throws its error.
    /// </summary>
    /// <remarks>When <paramref name="ct"/> fires first, the operation still takes its turn later (order is never
    /// broken) and then fails at once, which breaks its side of the connection: the bytes it would have moved
    /// are unaccounted for.</remarks>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<(int Slot, bool EndsConnection)> TakeTurnAsync<TArg>(Action<ConnectionMachine, TArg> start, TArg arg,
        ExchangePhase phase, int? knownSlot, CancellationToken ct)
    {
        List<(TaskCompletionSource<TurnVerdict>, TurnVerdict)>? wake = null;
        var slot = knownSlot ?? -1;
        TurnVerdict? mine = null;
        TaskCompletionSource<TurnVerdict>? tcs = null;
        lock (gate)
        {
            start(machine, arg);
            foreach (var a in machine.Actions)
            {
                if (a.Kind == CoreActionKind.Assigned) slot = a.Slot;
            }
            foreach (var a in machine.Actions)
            {
                if (a.Kind == CoreActionKind.Grant && a.Slot == slot && a.Phase == phase) mine = a.Verdict;
            }
            Collect(ref wake);
            if (mine is null)
            {
                tcs = new TaskCompletionSource<TurnVerdict>(TaskCreationOptions.RunContinuationsAsynchronously);
                waiters[(phase, slot)] = tcs;
            }
        }
        Wake(wake);
        var verdict = mine ?? await WaitAsync(tcs!.Task, phase, slot, ct).ConfigureAwait(false);
        if (!verdict.Proceed) throw machine.ToException(verdict.Refusal!);
        return (slot, verdict.EndsConnection);
    }

    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<TurnVerdict> WaitAsync(Task<TurnVerdict> turn, ExchangePhase phase, int slot, CancellationToken ct)
    {
        try
        {
            return await turn.WaitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException oce) when (ct.IsCancellationRequested)
        {
            _ = turn.ContinueWith(
                t =>
                {
                    if (t.Result.Proceed) Step(static (m, a) => m.Failed(a.phase, a.slot, a.oce), (phase, slot, oce));
                },
                CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            throw;
        }
    }

    /// <summary>Collects the waiters the last event granted (under the lock) and what else it asked.</summary>
    private StepOutcome Collect(ref List<(TaskCompletionSource<TurnVerdict>, TurnVerdict)>? wake)
    {
        bool sendContinue = false, close = false, handOver = false;
        foreach (var a in machine.Actions)
        {
            switch (a.Kind)
            {
                case CoreActionKind.Grant when waiters.Remove((a.Phase, a.Slot), out var tcs):
                    (wake ??= new()).Add((tcs, a.Verdict));
                    break;
                case CoreActionKind.SendContinue:
                    sendContinue = true;
                    break;
                case CoreActionKind.CloseTransport:
                    close = true;
                    break;
                case CoreActionKind.HandOver:
                    handOver = true;
                    break;
            }
        }
        return new StepOutcome(sendContinue, close, handOver);
    }

    private static void Wake(List<(TaskCompletionSource<TurnVerdict>, TurnVerdict)>? wake)
    {
        if (wake is null) return;
        foreach (var (tcs, v) in wake) tcs.TrySetResult(v);
    }
}
