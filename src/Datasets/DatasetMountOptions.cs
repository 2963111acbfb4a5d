namespace CsiCache.Datasets;

/// <summary>One dataset mount.</summary>
/// <param name="Source"><c>s3://bucket/prefix/</c>, <c>https://host/dir/</c>, <c>http://…</c> or <c>file:///abs</c>.</param>
/// <param name="Parameters">
/// The CSI volume context: <c>subPath</c>, <c>cacheMedium</c> (disk|memory), <c>prefetch</c>
/// (none|metadata|all|globs), <c>refresh</c> (a duration such as 30s, 10m, 1h), <c>endpoint</c>,
/// <c>region</c>, <c>pathStyle</c>. Other keys are ignored.
/// </param>
/// <param name="Secrets">CSI secrets: <c>accessKeyId</c>, <c>secretAccessKey</c>, <c>sessionToken</c> (S3); never logged.</param>
/// <param name="MountPoint">Where to mount (created when missing).</param>
public sealed record DatasetMountOptions(
    string Source,
    IReadOnlyDictionary<string, string> Parameters,
    IReadOnlyDictionary<string, string> Secrets,
    string MountPoint)
{
    /// <summary>Never prints the secrets (a record's generated ToString would).</summary>
    public override string ToString() => $"DatasetMountOptions {{ Source = {Source}, MountPoint = {MountPoint}, Parameters = {Parameters.Count}, Secrets = {Secrets.Count} (redacted) }}";
}
