using CsiCache.Deploy.Tests.Manifests;
using k8s.Models;

namespace CsiCache.Deploy.Tests.Checks;

/// <summary>
/// Consistency checks over a rendered deployment. Each returns the problems it
/// found, one readable line each; an empty list means the wiring holds.
/// </summary>
internal static class DeployChecks
{
    public const string KubeletDir = "/var/lib/kubelet";
    public const string RegistrationDir = "/var/lib/kubelet/plugins_registry";

    public static readonly IReadOnlyDictionary<string, Func<ManifestSet, List<string>>> All = new Dictionary<string, Func<ManifestSet, List<string>>>
    {
        ["socket"] = Socket,
        ["registrar"] = Registrar,
        ["driver-name"] = DriverName,
        ["node-privileges"] = NodePrivileges,
        ["service-accounts"] = ServiceAccounts,
        ["rbac-permissions"] = RbacPermissions,
        ["images"] = Images,
        ["liveness"] = Liveness,
        ["binding-mode"] = BindingMode,
        ["node-provisioner"] = NodeProvisioner,
        ["provisioner-race"] = ProvisionerRace,
        ["claims"] = Claims,
        ["namespaces"] = Namespaces,
    };

    public static List<string> RunAll(ManifestSet set)
    {
        return All.SelectMany(check => check.Value(set).Select(p => $"[{check.Key}] {p}")).ToList();
    }

    /// <summary>Every sidecar dials the socket csicache listens on, through the same volume.</summary>
    public static List<string> Socket(ManifestSet set)
    {
        var problems = new List<string>();
        foreach (var pod in DriverPod.In(set))
        {
            if (pod.Driver is not { } driver)
            {
                problems.Add($"{pod.Owner}: CSI sidecars without a csicache container");
                continue;
            }

            var endpoint = ContainerArgs.Value(driver, "endpoint");
            if (endpoint is null || !endpoint.StartsWith("unix:///", StringComparison.Ordinal))
            {
                problems.Add($"{pod.Owner}: csicache --endpoint must be unix:///ABSOLUTE/PATH, is '{endpoint}'");
                continue;
            }

            var socket = endpoint["unix://".Length..];
            var dir = Path.GetDirectoryName(socket)!;
            var driverMount = MountAt(driver, dir);
            if (driverMount is null)
            {
                problems.Add($"{pod.Owner}: csicache mounts no volume at the socket dir {dir}");
                continue;
            }

            foreach (var sidecar in pod.Sidecars)
            {
                var address = ContainerArgs.Value(sidecar, "csi-address") ?? ContainerArgs.Env(sidecar, "ADDRESS")?.Value;
                if (address is null)
                {
                    problems.Add($"{pod.Owner}/{sidecar.Name}: no --csi-address (the sidecar default /run/csi/socket is not ours)");
                    continue;
                }

                address = address.StartsWith("unix://", StringComparison.Ordinal) ? address["unix://".Length..] : address;
                if (address != socket)
                {
                    problems.Add($"{pod.Owner}/{sidecar.Name}: --csi-address {address} is not csicache's endpoint {socket}");
                }

                var mount = MountAt(sidecar, dir);
                if (mount is null || mount.Name != driverMount.Name)
                {
                    problems.Add($"{pod.Owner}/{sidecar.Name}: does not mount volume '{driverMount.Name}' at {dir} as csicache does");
                }
            }
        }

        return problems;
    }

    /// <summary>kubelet finds the socket at --kubelet-registration-path: the plugin dir's host path.</summary>
    public static List<string> Registrar(ManifestSet set)
    {
        var problems = new List<string>();
        foreach (var pod in DriverPod.In(set))
        {
            if (pod.Registrar is not { } registrar)
            {
                if (pod.IsDaemonSet && pod.Mode is "node" or "all")
                {
                    problems.Add($"{pod.Owner}: node plugin without node-driver-registrar: kubelet would never learn of the driver");
                }

                continue;
            }

            var socket = SocketPath(pod);
            var hostDir = socket is null ? null : HostPathOf(pod, pod.Driver!, Path.GetDirectoryName(socket)!);
            var registration = ContainerArgs.Value(registrar, "kubelet-registration-path");
            if (hostDir is null)
            {
                problems.Add($"{pod.Owner}: the csicache socket dir is not a hostPath, kubelet cannot reach the socket");
            }
            else if (registration != hostDir + "/" + Path.GetFileName(socket))
            {
                problems.Add($"{pod.Owner}/{registrar.Name}: --kubelet-registration-path {registration} is not the socket's host path {hostDir}/{Path.GetFileName(socket)}");
            }

            if (HostPathOf(pod, registrar, "/registration") != RegistrationDir)
            {
                problems.Add($"{pod.Owner}/{registrar.Name}: /registration must be the hostPath {RegistrationDir}");
            }

            if (registration is not null && !registration.StartsWith(KubeletDir + "/plugins/", StringComparison.Ordinal))
            {
                problems.Add($"{pod.Owner}/{registrar.Name}: registration path {registration} is outside {KubeletDir}/plugins/");
            }
        }

        return problems;
    }

    /// <summary>One driver name everywhere: CSIDriver, --driver-name, StorageClasses, inline volumes, plugin dir.</summary>
    public static List<string> DriverName(ManifestSet set)
    {
        var problems = new List<string>();
        var drivers = set.OfType<V1CSIDriver>().ToList();
        if (drivers.Count != 1)
        {
            return [$"expected exactly one CSIDriver, found {drivers.Count}"];
        }

        var name = drivers[0].Name();
        foreach (var pod in DriverPod.In(set).Where(p => p.Driver is not null))
        {
            if (pod.DriverName != name)
            {
                problems.Add($"{pod.Owner}: csicache serves driver '{pod.DriverName}', the CSIDriver is '{name}'");
            }

            if (pod.IsDaemonSet && SocketPath(pod) is { } socket && HostPathOf(pod, pod.Driver!, Path.GetDirectoryName(socket)!) is { } hostDir
                && hostDir != $"{KubeletDir}/plugins/{name}")
            {
                problems.Add($"{pod.Owner}: plugin dir {hostDir} is not {KubeletDir}/plugins/{name}");
            }
        }

        foreach (var sc in set.OfType<V1StorageClass>().Where(sc => sc.Provisioner != name))
        {
            problems.Add($"StorageClass/{sc.Name()}: provisioner '{sc.Provisioner}' is not the driver '{name}'");
        }

        foreach (var (owner, _, spec) in set.PodSpecs())
        {
            foreach (var volume in (spec.Volumes ?? []).Where(v => v.Csi is not null && v.Csi.Driver != name))
            {
                problems.Add($"{owner}: inline CSI volume '{volume.Name}' names driver '{volume.Csi.Driver}', not '{name}'");
            }
        }

        return problems;
    }

    /// <summary>The node plugin can mount for kubelet: privileged, Bidirectional kubelet dir, /dev/fuse.</summary>
    public static List<string> NodePrivileges(ManifestSet set)
    {
        var problems = new List<string>();
        foreach (var (owner, _, spec) in set.PodSpecs())
        {
            foreach (var container in spec.Containers)
            {
                foreach (var mount in (container.VolumeMounts ?? []).Where(m => m.MountPropagation == "Bidirectional" && container.SecurityContext?.Privileged != true))
                {
                    problems.Add($"{owner}/{container.Name}: Bidirectional mount {mount.MountPath} in an unprivileged container (the API server refuses it)");
                }
            }
        }

        foreach (var pod in DriverPod.In(set).Where(p => p.Mode is "node" or "all"))
        {
            var driver = pod.Driver!;
            if (!pod.IsDaemonSet)
            {
                problems.Add($"{pod.Owner}: the node plugin must run as a DaemonSet, one per node");
            }

            if (driver.SecurityContext?.Privileged != true)
            {
                problems.Add($"{pod.Owner}: csicache node container is not privileged (mount(2), /dev/fuse and loop devices need it)");
            }

            var kubelet = MountAt(driver, KubeletDir);
            if (kubelet is null || HostPathOf(pod, driver, KubeletDir) != KubeletDir)
            {
                problems.Add($"{pod.Owner}: csicache does not mount the host's {KubeletDir} at {KubeletDir}");
            }
            else if (kubelet.MountPropagation != "Bidirectional")
            {
                problems.Add($"{pod.Owner}: {KubeletDir} mount propagation is '{kubelet.MountPropagation}', mounts would not reach the host; must be Bidirectional");
            }

            if (HostPathOf(pod, driver, "/dev/fuse") != "/dev/fuse")
            {
                problems.Add($"{pod.Owner}: /dev/fuse of the host is not reachable in the csicache container");
            }

            if (HostPathOf(pod, driver, "/dev/loop-control") != "/dev/loop-control")
            {
                problems.Add($"{pod.Owner}: /dev/loop-control of the host is not reachable in the csicache container (local volumes)");
            }

            if (ContainerArgs.Value(driver, "node-id") is not "$(NODE_NAME)" || !IsFieldRef(ContainerArgs.Env(driver, "NODE_NAME"), "spec.nodeName"))
            {
                problems.Add($"{pod.Owner}: --node-id must be $(NODE_NAME) with NODE_NAME from spec.nodeName (topology is keyed by node name)");
            }
        }

        return problems;
    }

    /// <summary>Every ServiceAccount a pod runs as exists and is bound; every binding points at things that exist.</summary>
    public static List<string> ServiceAccounts(ManifestSet set)
    {
        var problems = new List<string>();
        var accounts = set.OfType<V1ServiceAccount>().Select(sa => (sa.Namespace(), sa.Name())).ToHashSet();
        var clusterRoles = set.OfType<V1ClusterRole>().Select(r => r.Name()).ToHashSet(StringComparer.Ordinal);
        var roles = set.OfType<V1Role>().Select(r => (r.Namespace(), r.Name())).ToHashSet();

        foreach (var pod in DriverPod.In(set))
        {
            var sa = pod.Spec.ServiceAccountName;
            if (string.IsNullOrEmpty(sa) || sa == "default")
            {
                problems.Add($"{pod.Owner}: runs as the namespace's default ServiceAccount");
                continue;
            }

            if (!accounts.Contains((pod.Namespace, sa)))
            {
                problems.Add($"{pod.Owner}: ServiceAccount {pod.Namespace}/{sa} does not exist");
            }

            var bound = set.OfType<V1ClusterRoleBinding>().Any(b => Rbac.Binds(b.Subjects, pod.Namespace, sa))
                || set.OfType<V1RoleBinding>().Any(b => Rbac.Binds(b.Subjects, pod.Namespace, sa));
            if (!bound)
            {
                problems.Add($"{pod.Owner}: ServiceAccount {pod.Namespace}/{sa} is bound to no role");
            }
        }

        foreach (var binding in set.OfType<V1ClusterRoleBinding>())
        {
            if (binding.RoleRef.Kind != "ClusterRole" || !clusterRoles.Contains(binding.RoleRef.Name))
            {
                problems.Add($"ClusterRoleBinding/{binding.Name()}: role {binding.RoleRef.Kind}/{binding.RoleRef.Name} does not exist");
            }

            problems.AddRange(MissingSubjects($"ClusterRoleBinding/{binding.Name()}", binding.Subjects, accounts));
        }

        foreach (var binding in set.OfType<V1RoleBinding>())
        {
            var exists = binding.RoleRef.Kind switch
            {
                "ClusterRole" => clusterRoles.Contains(binding.RoleRef.Name),
                "Role" => roles.Contains((binding.Namespace(), binding.RoleRef.Name)),
                _ => false,
            };
            if (!exists)
            {
                problems.Add($"RoleBinding/{binding.Namespace()}/{binding.Name()}: role {binding.RoleRef.Kind}/{binding.RoleRef.Name} does not exist in {binding.Namespace()}");
            }

            problems.AddRange(MissingSubjects($"RoleBinding/{binding.Name()}", binding.Subjects, accounts));
        }

        return problems;
    }

    /// <summary>Each external-provisioner's ServiceAccount may do what that provisioner's flags make it do.</summary>
    public static List<string> RbacPermissions(ManifestSet set)
    {
        var problems = new List<string>();
        var rbac = new Rbac(set);
        foreach (var pod in DriverPod.In(set))
        {
            if (pod.Provisioner is not { } provisioner || string.IsNullOrEmpty(pod.Spec.ServiceAccountName))
            {
                continue;
            }

            var sa = pod.Spec.ServiceAccountName;
            var needs = new List<(string Group, string Resource, string Verb, string? Namespace)>
            {
                ("", "persistentvolumes", "create", null), ("", "persistentvolumes", "delete", null), ("", "persistentvolumes", "watch", null),
                ("", "persistentvolumeclaims", "update", null), ("", "persistentvolumeclaims", "watch", null),
                ("storage.k8s.io", "storageclasses", "watch", null),
                ("", "events", "create", null), ("", "events", "patch", null),
                ("storage.k8s.io", "csinodes", "get", null), ("", "nodes", "get", null),
            };

            if (ContainerArgs.IsSet(provisioner, "enable-capacity"))
            {
                foreach (var verb in new[] { "get", "list", "watch", "create", "update", "delete" })
                {
                    needs.Add(("storage.k8s.io", "csistoragecapacities", verb, pod.Namespace));
                }

                var level = int.Parse(ContainerArgs.Value(provisioner, "capacity-ownerref-level") ?? "1", System.Globalization.CultureInfo.InvariantCulture);
                if (level >= 0)
                {
                    needs.Add(("", "pods", "get", pod.Namespace));
                }

                if (level >= 1)
                {
                    needs.Add(pod.IsDaemonSet ? ("apps", "daemonsets", "get", pod.Namespace) : ("apps", "replicasets", "get", pod.Namespace));
                }
            }

            if (ContainerArgs.IsSet(provisioner, "leader-election"))
            {
                var ns = ContainerArgs.Value(provisioner, "leader-election-namespace") is { } n && !n.StartsWith("$(", StringComparison.Ordinal) ? n : pod.Namespace;
                needs.Add(("coordination.k8s.io", "leases", "create", ns));
                needs.Add(("coordination.k8s.io", "leases", "update", ns));
                needs.Add(("coordination.k8s.io", "leases", "get", ns));
            }

            foreach (var need in needs.Where(n => !rbac.Allows(pod.Namespace, sa, n.Group, n.Resource, n.Verb, n.Namespace)))
            {
                var group = need.Group.Length == 0 ? "core" : need.Group;
                problems.Add($"{pod.Owner}: ServiceAccount {sa} may not {need.Verb} {group}/{need.Resource}{(need.Namespace is null ? "" : " in " + need.Namespace)}");
            }
        }

        return problems;
    }

    /// <summary>Every container names a pinned image.</summary>
    public static List<string> Images(ManifestSet set)
    {
        var problems = new List<string>();
        foreach (var (owner, _, spec) in set.PodSpecs())
        {
            foreach (var container in spec.Containers.Concat(spec.InitContainers ?? []))
            {
                var image = container.Image;
                if (string.IsNullOrWhiteSpace(image))
                {
                    problems.Add($"{owner}/{container.Name}: no image");
                    continue;
                }

                var name = ContainerArgs.ImageName(image);
                var tag = image.Length > name.Length && image[name.Length] == ':' ? image[(name.Length + 1)..] : null;
                if (!image.Contains('@', StringComparison.Ordinal) && (tag is null || tag == "latest"))
                {
                    problems.Add($"{owner}/{container.Name}: image {image} has no pinned tag or digest");
                }
            }
        }

        return problems;
    }

    /// <summary>The csicache liveness probe hits the port the livenessprobe sidecar serves; every probe's port exists.</summary>
    public static List<string> Liveness(ManifestSet set)
    {
        var problems = new List<string>();
        foreach (var pod in DriverPod.In(set))
        {
            foreach (var container in pod.Spec.Containers)
            {
                if (container.LivenessProbe?.HttpGet is { } get && ResolvePort(container, get.Port) is null)
                {
                    problems.Add($"{pod.Owner}/{container.Name}: liveness probe port '{get.Port.Value}' is not one of the container's ports");
                }
            }

            if (pod.Driver is not { } driver)
            {
                continue;
            }

            if (pod.LivenessProbe is not { } sidecar)
            {
                problems.Add($"{pod.Owner}: no livenessprobe sidecar, a hung csicache would never be restarted");
                continue;
            }

            // livenessprobe's --health-port defaults to 9808.
            var healthPort = int.Parse(ContainerArgs.Value(sidecar, "health-port") ?? "9808", System.Globalization.CultureInfo.InvariantCulture);
            var probe = driver.LivenessProbe?.HttpGet;
            if (probe is null)
            {
                problems.Add($"{pod.Owner}: csicache has no HTTP liveness probe");
            }
            else if (ResolvePort(driver, probe.Port) != healthPort || probe.Path != "/healthz")
            {
                problems.Add($"{pod.Owner}: csicache liveness probe GET {probe.Path} on port {ResolvePort(driver, probe.Port)}, the livenessprobe sidecar serves /healthz on {healthPort}");
            }

            if (pod.Registrar is { } registrar && ContainerArgs.Value(registrar, "http-endpoint") is { } endpoint && registrar.LivenessProbe?.HttpGet is { } regProbe
                && ":" + ResolvePort(registrar, regProbe.Port) != endpoint[endpoint.LastIndexOf(':')..])
            {
                problems.Add($"{pod.Owner}/{registrar.Name}: liveness probe port does not match --http-endpoint {endpoint}");
            }
        }

        return problems;
    }

    /// <summary>
    /// Local volumes bind late (the pod's node first, then the volume there), and no
    /// csicache claim may wait for a provisioner that ignores its binding mode.
    /// </summary>
    public static List<string> BindingMode(ManifestSet set)
    {
        var problems = new List<string>();
        var pods = DriverPod.In(set).Where(p => p.Provisioner is not null).ToList();
        var central = pods.Any(p => !ContainerArgs.IsSet(p.Provisioner!, "node-deployment"));
        var nodesTakeImmediate = pods.Any(p => ContainerArgs.IsSet(p.Provisioner!, "node-deployment")
            && ContainerArgs.Value(p.Provisioner!, "node-deployment-immediate-binding") is not ("false" or "False"));
        var immediateServed = pods.Count == 0 || central || nodesTakeImmediate;

        foreach (var sc in set.OfType<V1StorageClass>())
        {
            var waits = sc.VolumeBindingMode == "WaitForFirstConsumer";
            var local = sc.Parameters is null || !sc.Parameters.ContainsKey("source");
            if (local && !waits)
            {
                problems.Add($"StorageClass/{sc.Name()}: a local volume class must use WaitForFirstConsumer, is '{sc.VolumeBindingMode ?? "Immediate"}'");
            }
            else if (!waits && !immediateServed)
            {
                problems.Add($"StorageClass/{sc.Name()}: Immediate binding, but no provisioner takes Immediate claims (node provisioners run with --node-deployment-immediate-binding=false): its claims would stay Pending");
            }
        }

        return problems;
    }

    /// <summary>The DaemonSet's provisioner runs distributed, knows its node, and publishes capacity correctly.</summary>
    public static List<string> NodeProvisioner(ManifestSet set)
    {
        var problems = new List<string>();
        foreach (var pod in DriverPod.In(set).Where(p => p.Provisioner is not null))
        {
            var p = pod.Provisioner!;
            var topology = ContainerArgs.Value(p, "feature-gates")?.Split(',').Contains("Topology=true") == true;
            if (!topology)
            {
                problems.Add($"{pod.Owner}/{p.Name}: --feature-gates=Topology=true missing: volumes would get no node affinity");
            }

            if (!pod.IsDaemonSet)
            {
                if (ContainerArgs.IsSet(p, "node-deployment"))
                {
                    problems.Add($"{pod.Owner}/{p.Name}: --node-deployment outside a DaemonSet");
                }

                if (!ContainerArgs.IsSet(p, "leader-election"))
                {
                    problems.Add($"{pod.Owner}/{p.Name}: a central provisioner needs --leader-election");
                }

                continue;
            }

            if (!ContainerArgs.IsSet(p, "node-deployment"))
            {
                problems.Add($"{pod.Owner}/{p.Name}: a provisioner in the DaemonSet needs --node-deployment, else every node provisions every claim");
            }

            if (!IsFieldRef(ContainerArgs.Env(p, "NODE_NAME"), "spec.nodeName"))
            {
                problems.Add($"{pod.Owner}/{p.Name}: NODE_NAME must come from fieldRef spec.nodeName");
            }

            if (ContainerArgs.IsSet(p, "leader-election"))
            {
                problems.Add($"{pod.Owner}/{p.Name}: --leader-election with --node-deployment would leave one node provisioning for all");
            }

            if (pod.Mode is not ("node" or "all"))
            {
                problems.Add($"{pod.Owner}/{p.Name}: node provisioner next to csicache '{pod.Mode}', which does not create local volumes");
            }

            if (ContainerArgs.IsSet(p, "enable-capacity"))
            {
                if (!IsFieldRef(ContainerArgs.Env(p, "POD_NAME"), "metadata.name") || !IsFieldRef(ContainerArgs.Env(p, "NAMESPACE"), "metadata.namespace"))
                {
                    problems.Add($"{pod.Owner}/{p.Name}: capacity tracking needs POD_NAME (metadata.name) and NAMESPACE (metadata.namespace)");
                }

                if (set.OfType<V1CSIDriver>().Any(d => d.Spec.StorageCapacity != true))
                {
                    problems.Add($"{pod.Owner}/{p.Name}: capacity is published but CSIDriver.storageCapacity is not true, so the scheduler ignores it");
                }

                if (ContainerArgs.Value(p, "capacity-ownerref-level") is not ("0" or "1"))
                {
                    problems.Add($"{pod.Owner}/{p.Name}: --capacity-ownerref-level must be 0 (pod) or 1 (DaemonSet) in a DaemonSet");
                }
            }
        }

        return problems;
    }

    /// <summary>A central and a distributed provisioner for one driver both act on late-binding claims.</summary>
    public static List<string> ProvisionerRace(ManifestSet set)
    {
        var problems = new List<string>();
        foreach (var group in DriverPod.In(set).Where(p => p.Provisioner is not null).GroupBy(p => p.DriverName, StringComparer.Ordinal))
        {
            var central = group.Where(p => !ContainerArgs.IsSet(p.Provisioner!, "node-deployment")).Select(p => p.Owner).ToList();
            var distributed = group.Where(p => ContainerArgs.IsSet(p.Provisioner!, "node-deployment")).Select(p => p.Owner).ToList();
            if (central.Count > 0 && distributed.Count > 0)
            {
                problems.Add($"driver {group.Key}: central provisioner ({string.Join(", ", central)}) and node provisioners ({string.Join(", ", distributed)}) would both provision WaitForFirstConsumer claims and delete their PVs");
            }
        }

        return problems;
    }

    /// <summary>Claims name a class that exists, with the access modes its kind of volume allows.</summary>
    public static List<string> Claims(ManifestSet set)
    {
        var problems = new List<string>();
        var classes = set.OfType<V1StorageClass>().ToDictionary(sc => sc.Name(), StringComparer.Ordinal);
        var claims = set.OfType<V1PersistentVolumeClaim>().Select(c => ($"PersistentVolumeClaim/{c.Name()}", c.Spec))
            .Concat(set.OfType<V1StatefulSet>().SelectMany(s => (s.Spec.VolumeClaimTemplates ?? []).Select(t => ($"StatefulSet/{s.Name()}/{t.Name()}", t.Spec))));
        foreach (var (owner, spec) in claims)
        {
            if (spec.StorageClassName is null || !classes.TryGetValue(spec.StorageClassName, out var sc))
            {
                problems.Add($"{owner}: StorageClass '{spec.StorageClassName}' does not exist");
                continue;
            }

            var dataset = sc.Parameters?.ContainsKey("source") == true;
            var modes = spec.AccessModes ?? [];
            if (dataset && modes.Any(m => m != "ReadOnlyMany"))
            {
                problems.Add($"{owner}: a dataset volume is read-only, access modes must be ReadOnlyMany, are {string.Join(",", modes)}");
            }

            if (!dataset && modes.Any(m => m is not ("ReadWriteOnce" or "ReadWriteOncePod")))
            {
                problems.Add($"{owner}: a local volume lives on one node, access modes must be ReadWriteOnce or ReadWriteOncePod, are {string.Join(",", modes)}");
            }
        }

        foreach (var (owner, _, spec) in set.PodSpecs())
        {
            foreach (var volume in (spec.Volumes ?? []).Where(v => v.Csi is not null && v.Csi.ReadOnlyProperty != true))
            {
                problems.Add($"{owner}: inline csicache volume '{volume.Name}' is a dataset and must be readOnly: true");
            }
        }

        return problems;
    }

    /// <summary>Every namespace an object lives in or a binding points to is created by the set.</summary>
    public static List<string> Namespaces(ManifestSet set)
    {
        var problems = new List<string>();
        var namespaces = set.OfType<V1Namespace>().Select(n => n.Name()).ToHashSet(StringComparer.Ordinal);
        foreach (var obj in set.Objects.Where(o => o.Namespace() is not null && !namespaces.Contains(o.Namespace())))
        {
            problems.Add($"{obj.Kind}/{obj.Name()}: namespace {obj.Namespace()} is not created");
        }

        foreach (var sc in set.OfType<V1StorageClass>())
        {
            if (sc.Parameters is not null && sc.Parameters.TryGetValue("csi.storage.k8s.io/node-stage-secret-namespace", out var ns) && !ns.Contains('$', StringComparison.Ordinal) && !namespaces.Contains(ns))
            {
                problems.Add($"StorageClass/{sc.Name()}: secret namespace {ns} is not created");
            }
        }

        return problems;
    }

    private static IEnumerable<string> MissingSubjects(string owner, IEnumerable<Rbacv1Subject>? subjects, HashSet<(string, string)> accounts)
    {
        return (subjects ?? []).Where(s => s.Kind == "ServiceAccount" && !accounts.Contains((s.NamespaceProperty, s.Name)))
            .Select(s => $"{owner}: subject ServiceAccount {s.NamespaceProperty}/{s.Name} does not exist");
    }

    private static bool IsFieldRef(V1EnvVar? env, string fieldPath)
    {
        return env?.ValueFrom?.FieldRef?.FieldPath == fieldPath;
    }

    private static string? SocketPath(DriverPod pod)
    {
        var endpoint = pod.Driver is { } d ? ContainerArgs.Value(d, "endpoint") : null;
        return endpoint is not null && endpoint.StartsWith("unix:///", StringComparison.Ordinal) ? endpoint["unix://".Length..] : null;
    }

    /// <summary>The volume mount whose mount path is exactly <paramref name="path"/>.</summary>
    private static V1VolumeMount? MountAt(V1Container container, string path)
    {
        return container.VolumeMounts?.FirstOrDefault(m => m.MountPath.TrimEnd('/') == path.TrimEnd('/'));
    }

    /// <summary>
    /// The host path that <paramref name="path"/> inside the container maps to, through the
    /// deepest hostPath mount covering it; null when no hostPath mount covers it.
    /// </summary>
    private static string? HostPathOf(DriverPod pod, V1Container container, string path)
    {
        var mount = (container.VolumeMounts ?? [])
            .Where(m => path == m.MountPath.TrimEnd('/') || path.StartsWith(m.MountPath.TrimEnd('/') + "/", StringComparison.Ordinal))
            .OrderByDescending(m => m.MountPath.Length)
            .FirstOrDefault();
        if (mount is null || pod.Volume(mount.Name)?.HostPath is not { } hostPath)
        {
            return null;
        }

        var rest = path[mount.MountPath.TrimEnd('/').Length..];
        return hostPath.Path.TrimEnd('/') + rest;
    }

    private static int? ResolvePort(V1Container container, IntOrString port)
    {
        if (int.TryParse(port.Value, System.Globalization.CultureInfo.InvariantCulture, out var number))
        {
            return container.Ports?.Any(p => p.ContainerPort == number) == true ? number : null;
        }

        return container.Ports?.FirstOrDefault(p => p.Name == port.Value)?.ContainerPort;
    }
}
