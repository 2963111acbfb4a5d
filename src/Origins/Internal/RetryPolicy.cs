using System.Net.Sockets;

namespace CsiCache.Origins.Internal;

/// <summary>
/// Thrown inside an attempt for a fault worth retrying (5xx, 429, reset, refused, timeout).
/// <see cref="RetryPolicy"/> turns the last one into <see cref="OriginUnavailableException"/>.
/// </summary>
internal sealed class TransientOriginException : Exception
{
    public TransientOriginException(string message, Exception? inner = null, TimeSpan? retryAfter = null)
        : base(message, inner) => RetryAfter = retryAfter;

    /// <summary>The server's Retry-After, if it sent one.</summary>
    public TimeSpan? RetryAfter { get; }
}

/// <summary>
/// Bounded retries with exponential backoff and jitter, and a timeout per attempt. Written by hand
/// rather than with Polly: it is one loop, and keeping Origins free of another dependency keeps
/// the cost of each read visible. A dead origin fails after at most
/// RequestTimeout × (MaxRetries + 1) + Σ backoff, each backoff ≤ RetryMaxDelay.
/// </summary>
internal sealed class RetryPolicy
{
    private readonly OriginOptions _options;
    private readonly string _identity;

    public RetryPolicy(OriginOptions options, string identity = "")
    {
        _options = options;
        _identity = identity;
    }

    /// <summary>
    /// Runs <paramref name="attempt"/> until it succeeds, throws a non-transient exception, or the
    /// retries are spent. The attempt gets a token that fires at RequestTimeout or on <paramref name="ct"/>.
    /// State is passed explicitly so callers can use static lambdas (no closure per read), and
    /// the description is only formatted when something fails.
    /// </summary>
    public async Task<TResult> ExecuteAsync<TState, TResult>(
        string operation, string path, TState state, Func<TState, CancellationToken, Task<TResult>> attempt, CancellationToken ct)
    {
        for (int attemptNo = 0; ; attemptNo++)
        {
            ct.ThrowIfCancellationRequested();
            TransientOriginException failure;
            using (var attemptCts = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                attemptCts.CancelAfter(_options.RequestTimeout);
                try
                {
                    return await attempt(state, attemptCts.Token);
                }
                catch (TransientOriginException e)
                {
                    failure = e;
                }
                catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
                {
                    failure = new TransientOriginException(
                        $"{Describe(operation, path)}: no answer within {_options.RequestTimeout.TotalSeconds:0.###}s", e);
                }
                catch (TimeoutException e) when (!ct.IsCancellationRequested)
                {
                    failure = new TransientOriginException($"{Describe(operation, path)}: timed out", e);
                }
                catch (Exception e) when (e is not OriginException && !ct.IsCancellationRequested && IsTransientTransport(e))
                {
                    failure = new TransientOriginException($"{Describe(operation, path)}: {Describe(e)}", e);
                }
            }

            if (attemptNo >= _options.MaxRetries)
                throw new OriginUnavailableException($"{failure.Message} (gave up after {attemptNo + 1} attempts)", failure.InnerException ?? failure);

            await Task.Delay(Backoff(attemptNo, failure.RetryAfter), _options.TimeProvider, ct);
        }
    }

    private string Describe(string operation, string path) =>
        path.Length == 0 ? $"{operation} the root of {_identity}" : $"{operation} '{path}' in {_identity}";

    /// <summary>Exponential backoff with "equal jitter": half fixed, half random, capped.</summary>
    internal TimeSpan Backoff(int attemptNo, TimeSpan? retryAfter)
    {
        double baseMs = _options.RetryBaseDelay.TotalMilliseconds * Math.Pow(2, Math.Min(attemptNo, 16));
        double capMs = _options.RetryMaxDelay.TotalMilliseconds;
        double ms = Math.Min(baseMs, capMs);
        ms = (ms / 2) + (Random.Shared.NextDouble() * ms / 2);
        if (retryAfter is { } ra)
            ms = Math.Max(ms, Math.Min(ra.TotalMilliseconds, capMs));
        return TimeSpan.FromMilliseconds(ms);
    }

    /// <summary>Connection refused/reset, DNS hiccups, a body cut short: the network, not the request.</summary>
    internal static bool IsTransientTransport(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            if (x is HttpRequestException or SocketException or IOException or TimeoutException)
                return true;
        }
        return false;
    }

    /// <summary>A short cause for a message: the socket error when there is one (no URLs with secrets: ours carry none).</summary>
    internal static string Describe(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            if (x is SocketException se)
                return se.SocketErrorCode switch
                {
                    SocketError.ConnectionRefused => "connection refused",
                    SocketError.ConnectionReset => "connection reset",
                    SocketError.TimedOut => "connection timed out",
                    SocketError.HostNotFound or SocketError.TryAgain or SocketError.NoData => "host not found",
                    SocketError.HostUnreachable or SocketError.NetworkUnreachable => "host unreachable",
                    _ => "socket error " + se.SocketErrorCode,
                };
        }
        return e is HttpRequestException { HttpRequestError: not HttpRequestError.Unknown } hre
            ? "request failed: " + hre.HttpRequestError
            : "transport error (" + e.GetType().Name + ")";
    }
}
