/// A Kubernetes API request as the API server's authorizer sees it: verb, group, resource,
/// namespace and name, parsed from the method, path and query the way `RequestInfoFactory`
/// (`k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`) does, so that guardrails judge the
/// request the API server will actually run.
///
/// The path is the one kubectl sent with the gateway's `/CONNECTION` prefix already removed.
///
/// ## Command text
///
/// ``command`` reports `VERB RESOURCE[/SUBRESOURCE] SCOPE`, where SCOPE is
/// - `NAMESPACE/NAME` for a namespaced request, with NAME empty for collections:
///   `create pods/exec prod/web-1`, `list pods default/`;
/// - `NAME` for a cluster-scoped request, empty for collections (the text then ends with a
///   space): `get nodes node-1`, `list nodes `.
///
/// Names never contain `/` (such paths are malformed), so SCOPE contains a `/` exactly when the
/// request is namespaced: `^create pods/exec prod/` matches exec in `prod` and nothing else,
/// `^list secrets ` matches listing secrets in any namespace or across all of them.
///
/// The `namespaces` resource is cluster-scoped in the text (`delete namespaces prod`,
/// `update namespaces/finalize prod`), although ``namespace`` is set to the namespace's own name
/// for it, as the API server does.
///
/// Non-resource requests report `VERB PATH` with the lowercased HTTP method and the decoded path:
/// `get /version`, `get /apis/apps`.
///
/// ## Verbs
///
/// GET and HEAD with a name are `get`, without one `list`, or `watch` when the first `watch` query
/// value is anything but `0` or `false` (as the API server's boolean conversion reads it; an empty
/// value counts as true); `/watch/` in the path (legacy) is `watch` and `/proxy/` is `proxy`.
/// POST is `create`, PUT `update`, PATCH `patch`, DELETE `delete`, or `deletecollection` without a
/// name; other methods report their lowercased name. `pods/exec`, `pods/attach` and
/// `pods/portforward` are always `create`, whatever the method: WebSocket clients reach them with
/// GET, and Kubernetes 1.35 authorizes those as `create` too
/// (`AuthorizePodWebsocketUpgradeCreatePermission`).
///
/// A `fieldSelector=metadata.name=X` on a list or watch is not turned into a name (the API
/// server does so for RBAC when the whole query decodes): the gateway reports the broader scope,
/// so a rule never sees a narrower request than the one that may run.
///
/// ## Malformed requests
///
/// Paths longer than ``maximumPathLength`` bytes, with an empty segment in the middle, a bad
/// percent escape, a segment that is `.` or `..`, contains `/` or a control character (NUL
/// included) after decoding or is not UTF-8, and queries longer than ``maximumQueryLength`` bytes
/// or with more than ``maximumQueryParameters`` parameters are reported as a non-resource request
/// with ``malformed`` set. The gateway refuses those; they are never forwarded.
package struct KubernetesRequest: Sendable, Equatable {
    /// The stream options of `pods/exec`, `pods/attach` and other pod subresources, read from the
    /// query as the API server reads them (a parameter is true unless absent, `0` or `false`).
    package struct StreamOptions: Sendable, Equatable {
        package var stdin: Bool
        package var stdout: Bool
        package var stderr: Bool
        package var tty: Bool
        /// The `container` parameter, nil when absent.
        package var container: String?

        package init(stdin: Bool = false, stdout: Bool = false, stderr: Bool = false, tty: Bool = false, container: String? = nil) {
            self.stdin = stdin
            self.stdout = stdout
            self.stderr = stderr
            self.tty = tty
            self.container = container
        }
    }

    /// The authorization verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, `proxy`), or the lowercased HTTP method for non-resource requests.
    package var verb: String
    /// The API group, `""` for the core group and for non-resource requests.
    package var apiGroup: String
    package var apiVersion: String
    /// The resource's plural name, lowercased; `""` for non-resource requests.
    package var resource: String
    package var subresource: String?
    /// The namespace (for the `namespaces` resource itself: the namespace's own name).
    package var namespace: String?
    package var name: String?
    package var isResourceRequest: Bool
    /// The path was refused (see the type's documentation); the request must not be forwarded.
    package var malformed: Bool
    /// The path as received (at most ``maximumPathLength`` bytes of it), not decoded.
    package var path: String
    /// For `pods/exec`: the `command` query parameters in order, decoded.
    package var execCommand: [String]
    /// For pod subresources (`exec`, `attach`, `log`, …): the stream options of the query.
    package var queryFlags: StreamOptions

    /// The longest path accepted, in bytes.
    package static let maximumPathLength = 4096
    /// The longest query accepted, in bytes.
    package static let maximumQueryLength = 64 * 1024
    /// The most query parameters accepted.
    package static let maximumQueryParameters = 1000

    /// The path's segments decoded and joined (for the command text of non-resource requests).
    private var displayPath: String
    /// Whether the command text has a `NAMESPACE/` scope.
    private var namespaced = false

    private init(nonResource verb: String, path: String, displayPath: String, malformed: Bool) {
        self.verb = verb
        apiGroup = ""
        apiVersion = ""
        resource = ""
        subresource = nil
        namespace = nil
        name = nil
        isResourceRequest = false
        self.malformed = malformed
        self.path = path
        execCommand = []
        queryFlags = StreamOptions()
        self.displayPath = displayPath
    }

    /// Parses a request; never fails (unknown shapes are non-resource requests, refused shapes
    /// are ``malformed``).
    ///
    /// - Parameters:
    ///   - method: The HTTP method (`GET`, `POST`, …).
    ///   - path: The path without the gateway's `/CONNECTION` prefix and without the query.
    ///   - query: The raw query (after `?`), or nil.
    package static func parse(method: String, path: String, query: String?) -> KubernetesRequest {
        let httpVerb = method.lowercased()
        let pathBytes = path.utf8
        let keptPath = pathBytes.count <= maximumPathLength ? path : String(decoding: pathBytes.prefix(maximumPathLength), as: UTF8.self)
        let printable = String(String.UnicodeScalarView(keptPath.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "?" : $0 }))
        let malformedRequest = KubernetesRequest(nonResource: httpVerb, path: keptPath, displayPath: printable, malformed: true)

        guard pathBytes.count <= maximumPathLength, let segments = decodedSegments(path) else { return malformedRequest }
        let query = query ?? ""
        guard query.utf8.count <= maximumQueryLength else { return malformedRequest }
        let (pairs, overflow) = queryPairs(query)
        guard !overflow else { return malformedRequest }

        var request = KubernetesRequest(nonResource: httpVerb, path: path,
                                        displayPath: "/" + segments.joined(separator: "/"), malformed: false)

        // Resource paths: /api/VERSION/… (core) and /apis/GROUP/VERSION/… (named groups).
        guard segments.count >= 3, segments[0] == "api" || segments[0] == "apis" else { return request }
        var parts = segments[1...]
        var group = ""
        if segments[0] == "apis" {
            guard parts.count >= 3 else { return request }
            group = parts.removeFirst()
        }
        let version = parts.removeFirst()

        var verb: String
        if parts.first == "watch" || parts.first == "proxy" {
            // Legacy verb-in-path forms: /watch/…, /proxy/….
            guard parts.count >= 2 else { return malformedRequest }
            verb = parts.removeFirst()
        } else {
            switch method.uppercased() {
            case "POST": verb = "create"
            case "GET", "HEAD": verb = "get"
            case "PUT": verb = "update"
            case "PATCH": verb = "patch"
            case "DELETE": verb = "delete"
            default: verb = httpVerb
            }
        }

        var namespace: String?
        var clusterScoped = true
        if parts.first == "namespaces", parts.count > 1 {
            namespace = parts[parts.startIndex + 1]
            if parts.count > 2, !namespaceSubresources.contains(parts[parts.startIndex + 2]) {
                // namespaces/NS/RESOURCE…: a resource in that namespace.
                parts = parts.dropFirst(2)
                clusterScoped = false
            }
            // Otherwise the namespace itself (namespaces/NAME[/status|/finalize]).
        }

        let resource = parts[parts.startIndex].lowercased()
        let name = parts.count >= 2 ? parts[parts.startIndex + 1] : nil
        let subresource = parts.count >= 3 && verb != "proxy" ? parts[parts.startIndex + 2].lowercased() : nil

        if name == nil && verb == "get" {
            if let watch = first("watch", in: pairs), goBool(watch) { verb = "watch" } else { verb = "list" }
        }
        if name == nil && verb == "delete" { verb = "deletecollection" }

        let pod = group.isEmpty && resource == "pods"
        if pod, let subresource, connectSubresources.contains(subresource) { verb = "create" }

        request.isResourceRequest = true
        request.verb = verb
        request.apiGroup = group
        request.apiVersion = version
        request.resource = resource
        request.subresource = subresource
        request.namespace = namespace
        request.name = name
        request.namespaced = !clusterScoped
        if pod, subresource != nil {
            request.queryFlags = StreamOptions(
                stdin: first("stdin", in: pairs).map(goBool) ?? false,
                stdout: first("stdout", in: pairs).map(goBool) ?? false,
                stderr: first("stderr", in: pairs).map(goBool) ?? false,
                tty: first("tty", in: pairs).map(goBool) ?? false,
                container: first("container", in: pairs))
            if subresource == "exec" {
                request.execCommand = pairs.filter { $0.0 == "command" }.map(\.1)
            }
        }
        return request
    }

    /// What the guardrails see: `VERB RESOURCE[/SUBRESOURCE] SCOPE` (see the type's documentation).
    package var command: Command {
        guard isResourceRequest else {
            var classes = [verb, "nonresource"]
            if malformed { classes.append("malformed") }
            return Command(text: "\(verb) \(displayPath)", classes: classes)
        }
        var target = resource
        if let subresource { target += "/" + subresource }
        let scope = namespaced ? "\(namespace ?? "")/\(name ?? "")" : name ?? ""

        // `resource:` names any resource, built-in or custom, so a rule on a custom resource is
        // spelled apart from a misspelled built-in one (see `GuardrailClasses`).
        var classes = [verb, resource, "resource:" + resource]
        if let subresource { classes += [resource + "/" + subresource, "resource:" + resource + "/" + subresource] }
        classes.append(Self.readVerbs.contains(verb) ? "read" : "write")
        if resource == "pods", apiGroup.isEmpty {
            if subresource == "exec" || subresource == "attach" { classes.append("exec") }
            if subresource == "portforward" { classes.append("port_forward") }
        }
        if resource == "secrets" { classes.append("secrets") }
        if !apiGroup.isEmpty { classes.append("group:" + apiGroup) }
        return Command(text: "\(verb) \(target) \(scope)", classes: classes)
    }

    /// Parses a query as Go's `url.ParseQuery` does: pairs split on `&`, a pair containing `;` or
    /// a bad percent escape is dropped, `+` is a space, a key without `=` has an empty value.
    /// Returns at most ``maximumQueryParameters`` pairs; the rest is ignored.
    package static func parseQuery(_ query: String) -> [(String, String)] {
        queryPairs(query).pairs
    }

    // MARK: - Parsing helpers

    private static let namespaceSubresources: Set<String> = ["status", "finalize"]
    private static let connectSubresources: Set<String> = ["exec", "attach", "portforward"]
    private static let readVerbs: Set<String> = ["get", "list", "watch"]

    /// The first value of `key`, as `req.URL.Query()[key][0]`.
    private static func first(_ key: String, in pairs: [(String, String)]) -> String? {
        pairs.first { $0.0 == key }?.1
    }

    /// The API server's query boolean: false only for `0` and `false` (any case).
    private static func goBool(_ value: String) -> Bool {
        !(value == "0" || value.lowercased() == "false")
    }

    /// Pairs of the query, and whether it had more than ``maximumQueryParameters`` parameters.
    private static func queryPairs(_ query: String) -> (pairs: [(String, String)], overflow: Bool) {
        var pairs: [(String, String)] = []
        var count = 0
        for piece in query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            count += 1
            if count > maximumQueryParameters { return (pairs, true) }
            if piece.contains(UInt8(ascii: ";")) { continue }
            let equals = piece.firstIndex(of: UInt8(ascii: "="))
            let keyBytes = piece[..<(equals ?? piece.endIndex)]
            let valueBytes = equals.map { piece[piece.index(after: $0)...] } ?? piece[piece.endIndex...]
            guard let key = percentDecoded(keyBytes, plusIsSpace: true),
                  let value = percentDecoded(valueBytes, plusIsSpace: true) else { continue }
            pairs.append((String(decoding: key, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
        return (pairs, false)
    }

    /// The decoded path segments, or nil when the path is refused. One leading and one trailing
    /// `/` are ignored; `""` and `/` have no segments.
    private static func decodedSegments(_ path: String) -> [String]? {
        var bytes = path.utf8[...]
        if bytes.first == UInt8(ascii: "/") { bytes = bytes.dropFirst() }
        if bytes.last == UInt8(ascii: "/") { bytes = bytes.dropLast() }
        if bytes.isEmpty { return [] }
        var segments: [String] = []
        for raw in bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            guard !raw.isEmpty, let decoded = percentDecoded(raw, plusIsSpace: false),
                  !decoded.contains(where: { $0 == UInt8(ascii: "/") || $0 < 0x20 || $0 == 0x7f }) else { return nil }
            let segment = String(decoding: decoded, as: UTF8.self)
            // Invalid UTF-8 was replaced by U+FFFD, which changes the bytes.
            guard segment.utf8.elementsEqual(decoded), segment != ".", segment != ".." else { return nil }
            segments.append(segment)
        }
        return segments
    }

    /// `%XX` decoded (and `+` as a space when `plusIsSpace`); nil on a bad escape.
    static func percentDecoded(_ bytes: some Collection<UInt8>, plusIsSpace: Bool) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var iterator = bytes.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
                out.append(high << 4 | low)
            case UInt8(ascii: "+") where plusIsSpace:
                out.append(UInt8(ascii: " "))
            default:
                out.append(byte)
            }
        }
        return out
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
