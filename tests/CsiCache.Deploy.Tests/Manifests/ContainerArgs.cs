using k8s.Models;

namespace CsiCache.Deploy.Tests.Manifests;

/// <summary>
/// Reads command-line flags the way the Go sidecars (pflag) and System.CommandLine
/// accept them: "--name=value" or "--name value", with kubelet's $(VAR) expansion
/// from the container's literal env values.
/// </summary>
internal static class ContainerArgs
{
    public static IReadOnlyList<string> All(V1Container container)
    {
        return (container.Command ?? []).Concat(container.Args ?? []).Select(a => Expand(container, a)).ToList();
    }

    /// <summary>The value of --name, or null when the flag is absent.</summary>
    public static string? Value(V1Container container, string name)
    {
        var args = All(container);
        var flag = "--" + name;
        for (var i = 0; i < args.Count; i++)
        {
            if (args[i].StartsWith(flag + "=", StringComparison.Ordinal))
            {
                return args[i][(flag.Length + 1)..];
            }

            if (args[i] == flag && i + 1 < args.Count && !args[i + 1].StartsWith('-'))
            {
                return args[i + 1];
            }
        }

        return null;
    }

    /// <summary>True when a boolean flag is set: "--name", "--name=true" or "--name true".</summary>
    public static bool IsSet(V1Container container, string name)
    {
        var args = All(container);
        var flag = "--" + name;
        if (args.Contains(flag))
        {
            var value = Value(container, name);
            return value is null || value.Equals("true", StringComparison.OrdinalIgnoreCase);
        }

        return string.Equals(Value(container, name), "true", StringComparison.OrdinalIgnoreCase);
    }

    public static V1EnvVar? Env(V1Container container, string name)
    {
        return container.Env?.FirstOrDefault(e => e.Name == name);
    }

    /// <summary>The image name without tag or digest ("host:5000/a/b:tag" -> "host:5000/a/b").</summary>
    public static string ImageName(string image)
    {
        var at = image.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0)
        {
            image = image[..at];
        }

        var slash = image.LastIndexOf('/');
        var colon = image.LastIndexOf(':');
        return colon > slash ? image[..colon] : image;
    }

    private static string Expand(V1Container container, string arg)
    {
        // kubelet expands $(VAR) from env entries with a literal value; a fieldRef
        // value is only known on the node, so it stays as written.
        foreach (var env in container.Env ?? [])
        {
            if (env.Value is not null)
            {
                arg = arg.Replace("$(" + env.Name + ")", env.Value, StringComparison.Ordinal);
            }
        }

        return arg;
    }
}
