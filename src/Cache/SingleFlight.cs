using System.Collections.Concurrent;

namespace CsiCache.Cache;

/// <summary>
/// Collapses concurrent calls for the same key into one execution of the work ("single
/// flight"): the first caller starts it, later callers join it, and all of them receive its
/// result or its exception. A caller whose token is cancelled leaves the flight; the work itself
/// is cancelled only when every caller has left, so one impatient reader does not fail the
/// others. Once the work ends, the key is free again: nothing is remembered (the cache is the
/// memory).
/// </summary>
/// <typeparam name="TKey">What identifies a flight.</typeparam>
/// <typeparam name="TResult">What the work produces.</typeparam>
public sealed class SingleFlight<TKey, TResult>
    where TKey : notnull
{
    private readonly ConcurrentDictionary<TKey, Flight> _flights;
    private readonly Action<TResult, int>? _onCompleted;

    /// <param name="onCompleted">
    /// Called once when the work succeeds, with the number of callers that will receive the
    /// result (possibly zero, when all have left). It runs before any of them resumes, so a
    /// result carrying reference counts can hand one to each receiver and drop its own.
    /// </param>
    /// <param name="comparer">Key comparer, or the default.</param>
    public SingleFlight(Action<TResult, int>? onCompleted = null, IEqualityComparer<TKey>? comparer = null)
    {
        _onCompleted = onCompleted;
        _flights = new ConcurrentDictionary<TKey, Flight>(comparer);
    }

    /// <summary>Flights running now.</summary>
    public int Count => _flights.Count;

    /// <summary>Whether a flight for <paramref name="key"/> is under way (a snapshot).</summary>
    public bool IsRunning(TKey key) => _flights.ContainsKey(key);

    /// <summary>
    /// Runs <paramref name="work"/> for <paramref name="key"/> unless a flight for it is already
    /// running, in which case the caller joins that flight. The work gets a token that is
    /// cancelled when all callers have left; it is started on the first caller's thread.
    /// </summary>
    public ValueTask<TResult> RunAsync<TState>(
        TKey key,
        TState state,
        Func<TKey, TState, CancellationToken, ValueTask<TResult>> work,
        CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(work);
        if (ct.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<TResult>(ct);
        }
        var spin = default(SpinWait);
        while (true)
        {
            if (!_flights.TryGetValue(key, out Flight? flight))
            {
                var created = new Flight(this, key);
                flight = _flights.GetOrAdd(key, created);
                if (ReferenceEquals(flight, created))
                {
                    created.TryJoin();
                    _ = created.RunAsync(state, work);
                    return created.WaitAsync(ct);
                }
            }
            if (flight.TryJoin())
            {
                return flight.WaitAsync(ct);
            }
            // The flight has just ended but is not yet out of the map: its removal is a few
            // instructions away, so spin rather than join a finished flight.
            spin.SpinOnce();
        }
    }

    /// <summary>The same as the state overload, for callers that do not mind a closure.</summary>
    public ValueTask<TResult> RunAsync(TKey key, Func<TKey, CancellationToken, ValueTask<TResult>> work, CancellationToken ct) =>
        RunAsync(key, work, static (k, w, t) => w(k, t), ct);

    // The flight's CancellationTokenSource has no timer, so it holds nothing that needs
    // disposing; disposing it would race with a late CancelAsync from the last leaving waiter.
#pragma warning disable CA1001
    private sealed class Flight(SingleFlight<TKey, TResult> owner, TKey key)
    {
        private readonly Lock _gate = new();
        private readonly TaskCompletionSource<TResult> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly CancellationTokenSource _cancel = new();
        private int _waiters;

        // No caller may join once the flight is closed: it has finished (result counted out)
        // or been abandoned by every caller.
        private bool _closed;

        // Set when the result was counted out to the waiters present at that moment.
        private bool _finished;

#pragma warning restore CA1001

        public bool TryJoin()
        {
            lock (_gate)
            {
                if (_closed)
                {
                    return false;
                }
                _waiters++;
                return true;
            }
        }

        public async Task RunAsync<TState>(TState state, Func<TKey, TState, CancellationToken, ValueTask<TResult>> work)
        {
            TResult result;
            try
            {
                result = await work(key, state, _cancel.Token).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                lock (_gate)
                {
                    _closed = true;
                    _finished = true;
                }
                owner._flights.TryRemove(new KeyValuePair<TKey, Flight>(key, this));
                _completion.TrySetException(ex);
                // Every waiter may have left already; observe the exception so it is not reported as unobserved.
                _ = _completion.Task.Exception;
                return;
            }
            lock (_gate)
            {
                _closed = true;
                _finished = true;
                owner._onCompleted?.Invoke(result, _waiters);
            }
            owner._flights.TryRemove(new KeyValuePair<TKey, Flight>(key, this));
            _completion.TrySetResult(result);
        }

        // Awaiting our own completion source is the point of a single flight; there is no
        // synchronization context in this library to deadlock on (VSTHRD003).
#pragma warning disable VSTHRD003
        public async ValueTask<TResult> WaitAsync(CancellationToken ct)
        {
            if (!ct.CanBeCanceled)
            {
                return await _completion.Task.ConfigureAwait(false);
            }
            try
            {
                return await _completion.Task.WaitAsync(ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                bool counted;
                bool abandon = false;
                lock (_gate)
                {
                    counted = _finished;
                    if (!counted)
                    {
                        _waiters--;
                        abandon = _waiters == 0 && !_closed;
                        _closed |= abandon;
                    }
                }
                if (counted)
                {
                    // We were counted when the result was handed out: take it (or its error),
                    // so that whatever it holds for us is not leaked.
                    return await _completion.Task.ConfigureAwait(false);
                }
                if (abandon)
                {
                    // Nobody waits any more: free the key for the next caller and stop the work.
                    owner._flights.TryRemove(new KeyValuePair<TKey, Flight>(key, this));
                    await _cancel.CancelAsync().ConfigureAwait(false);
                }
                throw;
            }
        }
#pragma warning restore VSTHRD003
    }
}
