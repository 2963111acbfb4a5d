namespace CsiCache.Datasets;

/// <summary>Parses sizes as Kubernetes and people write them: "10Gi", "512Mi", "1G", "4096".</summary>
public static class ByteSize
{
    /// <summary>Parses a size; throws <see cref="FormatException"/> with the accepted forms.</summary>
    public static long Parse(string text) => throw new NotImplementedException();
}
