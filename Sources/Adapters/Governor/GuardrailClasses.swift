/// The command classes each protocol's adapter reports, so that a guardrail naming a class no
/// adapter ever reports (a misspelling such as `delet_without_where`) is refused when the
/// configuration loads instead of never matching. The lists follow what the adapters emit
/// (`SQLStatements`, `SSHCommands`, `HTTPProxyRules`, `KubernetesRequest`); a unit test checks
/// that every class the adapters report on a set of sample commands is known here.
package enum GuardrailClasses {
    /// The classes of a protocol (`postgres`, `ssh`, `http`, `kubernetes`), or nil for another name.
    package static func known(for protocolName: String) -> Set<String>? {
        switch protocolName {
        case "postgres": postgres
        case "ssh": ssh
        case "http": http
        case "kubernetes": kubernetes
        default: nil
        }
    }

    /// nil when `name` is a class the protocol's adapter reports; otherwise why it is refused,
    /// with the nearest known class when one is close and what to write instead.
    package static func problem(with name: String, protocolName: String) -> String? {
        guard let known = known(for: protocolName) else { return "unknown protocol '\(protocolName)'" }
        if known.contains(name) { return nil }
        if protocolName == "kubernetes" {
            // Named API groups and custom resources are open sets: spelled with a prefix.
            if name.hasPrefix("group:"), name.count > "group:".count { return nil }
            if name.hasPrefix("resource:"), name.count > "resource:".count { return nil }
            // RESOURCE/SUBRESOURCE of built-in resources.
            let parts = name.split(separator: "/", omittingEmptySubsequences: false)
            if parts.count == 2, kubernetesResources.contains(String(parts[0])), kubernetesSubresources.contains(String(parts[1])) {
                return nil
            }
        }
        var reason = "unknown class '\(name.prefix(64))' for a \(protocolName) connection"
        if let near = nearest(to: name, in: known) { reason += " (did you mean '\(near)'?)" }
        let fixed = (protocolName == "kubernetes" ? known.subtracting(kubernetesResources) : known).sorted()
        reason += "; known: " + fixed.joined(separator: ", ")
        switch protocolName {
        case "kubernetes":
            reason += ", the built-in resources (pods, secrets, deployments, …) and RESOURCE/SUBRESOURCE; "
                + "write group:GROUP for an API group and resource:NAME for a custom resource"
        case "ssh":
            reason += "; match other subsystems with match: '^subsystem NAME$'"
        case "http":
            reason += "; match other methods with match: '^METHOD '"
        default:
            break
        }
        return reason
    }

    static let postgres: Set<String> = Set(SQLStatementClass.allCases.map(\.name))

    static let ssh: Set<String> = [
        "exec", "scp", "rsync", "shell", "shell_session", "subsystem", "sftp", "port_forward",
        "dynamic", "expansion",
    ]

    /// The methods of RFC 9110 and RFC 5789 (PATCH) and the common WebDAV ones, in lower case.
    static let httpMethods: Set<String> = [
        "get", "head", "post", "put", "delete", "connect", "options", "trace", "patch",
        "propfind", "proppatch", "mkcol", "copy", "move", "lock", "unlock", "report", "search",
    ]

    static let http: Set<String> = httpMethods.union(["read", "write"])

    /// Authorization verbs, and the HTTP methods that non-resource requests report as verbs.
    static let kubernetesVerbs: Set<String> = [
        "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "proxy",
        "post", "put", "head", "options",
    ]

    /// The resources of the built-in API groups.
    static let kubernetesResources: Set<String> = [
        "bindings", "componentstatuses", "configmaps", "endpoints", "events", "limitranges", "namespaces", "nodes",
        "persistentvolumeclaims", "persistentvolumes", "pods", "podtemplates", "replicationcontrollers",
        "resourcequotas", "secrets", "serviceaccounts", "services",
        "mutatingwebhookconfigurations", "validatingwebhookconfigurations", "validatingadmissionpolicies",
        "validatingadmissionpolicybindings", "customresourcedefinitions", "apiservices",
        "controllerrevisions", "daemonsets", "deployments", "replicasets", "statefulsets",
        "tokenreviews", "localsubjectaccessreviews", "selfsubjectaccessreviews", "selfsubjectrulesreviews",
        "subjectaccessreviews", "selfsubjectreviews", "horizontalpodautoscalers", "cronjobs", "jobs",
        "certificatesigningrequests", "leases", "endpointslices", "flowschemas", "prioritylevelconfigurations",
        "ingressclasses", "ingresses", "networkpolicies", "runtimeclasses", "poddisruptionbudgets",
        "clusterrolebindings", "clusterroles", "rolebindings", "roles", "priorityclasses", "csidrivers", "csinodes",
        "csistoragecapacities", "storageclasses", "volumeattachments", "resourceclaims", "resourceclaimtemplates",
        "deviceclasses", "resourceslices", "servicecidrs", "ipaddresses",
    ]

    static let kubernetesSubresources: Set<String> = [
        "exec", "attach", "log", "portforward", "proxy", "status", "scale", "binding", "eviction",
        "ephemeralcontainers", "token", "approval", "resize", "finalize",
    ]

    static let kubernetes: Set<String> = kubernetesVerbs.union(kubernetesResources).union([
        "read", "write", "exec", "port_forward", "secrets", "nonresource", "malformed",
        "kubernetes_exec", "dynamic", "expansion",
    ])

    /// The known class within edit distance 2 of `name`, the closest first (ties: alphabetical).
    static func nearest(to name: String, in known: Set<String>) -> String? {
        let target = Array(name.utf8.prefix(64))
        var best: (distance: Int, name: String)?
        for candidate in known.sorted() {
            let bytes = Array(candidate.utf8)
            guard abs(bytes.count - target.count) <= 2 else { continue }
            let distance = editDistance(target, bytes)
            if distance <= 2, best == nil || distance < best!.distance { best = (distance, candidate) }
        }
        return best?.name
    }

    static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        var current = Array(repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
