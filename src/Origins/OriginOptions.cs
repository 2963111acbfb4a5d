namespace CsiCache.Origins;

/// <summary>
/// Timeouts and retry policy shared by every origin. A dead origin fails with
/// <see cref="OriginUnavailableException"/> after at most
/// <c>RequestTimeout × (MaxRetries + 1) + the backoff delays</c> (each delay ≤ <see cref="RetryMaxDelay"/>).
/// </summary>
public sealed record OriginOptions
{
    /// <summary>Limit on one attempt (connect + headers + body of one ranged read).</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Retries after the first attempt for transient faults (5xx, 429, reset/refused, timeout).</summary>
    public int MaxRetries { get; init; } = 3;

    /// <summary>First backoff; doubled per retry, with jitter so many readers don't retry in lockstep.</summary>
    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Cap on one backoff delay, and on a server's Retry-After that we honour.</summary>
    public TimeSpan RetryMaxDelay { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Entries per list page (S3 MaxKeys; POSIX and HTTP pages are cut to it too). S3 caps it at 1000.</summary>
    public int ListPageSize { get; init; } = 1000;

    /// <summary>
    /// Parallel connections per HTTP/S3 server. High because the dataset layer issues many ranged
    /// reads at once (read-ahead + prefetch) and each needs its own HTTP/1.1 connection.
    /// </summary>
    public int MaxConnectionsPerServer { get; init; } = 256;

    /// <summary>Clock for backoff delays (tests may pass a fake one).</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Checks the values once, so each origin can trust them.</summary>
    public void Validate()
    {
        if (RequestTimeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(RequestTimeout), RequestTimeout, "must be positive");
        if (MaxRetries < 0)
            throw new ArgumentOutOfRangeException(nameof(MaxRetries), MaxRetries, "must be >= 0");
        if (RetryBaseDelay < TimeSpan.Zero || RetryMaxDelay < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(RetryBaseDelay), RetryBaseDelay, "must be >= 0");
        if (ListPageSize is < 1 or > 1000)
            throw new ArgumentOutOfRangeException(nameof(ListPageSize), ListPageSize, "must be 1..1000");
        if (MaxConnectionsPerServer < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxConnectionsPerServer), MaxConnectionsPerServer, "must be >= 1");
    }
}
