import Adapters
import Foundation
import HTTPTypes
import Hummingbird
import Mustache
import NIOCore

/// The web console, served by the admin listener under `/console`: server-rendered pages
/// (Mustache templates), a little vanilla JavaScript, no inline scripts. Sign-in with the OIDC
/// authorization-code flow (PKCE) or, in dev mode, by pasting a token minted by `sluice token`; a cookie session with a CSRF
/// token on every form. Who sees what follows the admin API: `auditor` and `admin` see every
/// session, others their own; reviews are decided by their approvers (never their requester).
public struct Console: Sendable {
    /// What the console may use of the gateway (``AdminServices``), nothing more.
    public let services: AdminServices
    public let logins: ConsoleLogins
    let library: MustacheLibrary
    let assets: [String: (type: String, bytes: ByteBuffer)]
    /// Audit verification results (the last full run), shared by the audit page.
    let audits: AuditResults

    /// Sign-ins are kept in the runtime's store too, so every gateway of a shared store knows them.
    public init(runtime: GatewayRuntime, logins: ConsoleLogins? = nil) async throws {
        try await self.init(services: AdminServices(runtime: runtime), logins: logins ?? ConsoleLogins(store: runtime.store))
    }

    public init(services: AdminServices, logins: ConsoleLogins = ConsoleLogins()) async throws {
        self.services = services
        self.logins = logins
        guard let root = Bundle.module.url(forResource: "Resources", withExtension: nil) else {
            throw ConfigurationError(file: nil, key: "console", reason: "the console's templates are missing from the build")
        }
        library = try await MustacheLibrary(directory: root.appendingPathComponent("templates").path)
        var assets: [String: (String, ByteBuffer)] = [:]
        for (name, type) in [("console.css", "text/css; charset=utf-8"), ("console.js", "text/javascript; charset=utf-8"),
                             ("player.js", "text/javascript; charset=utf-8")] {
            let data = try Data(contentsOf: root.appendingPathComponent("static").appendingPathComponent(name))
            assets[name] = (type, ByteBuffer(bytes: data))
        }
        self.assets = assets
        audits = AuditResults()
    }

    static let cookie = "sluice_console"
    static let preCookie = "sluice_signin"

    var secureCookies: Bool { services.operations.policy.configuration.publicURL?.hasPrefix("https://") == true }

    // MARK: - Responses

    /// Security headers of every console response.
    static func headers(_ type: String = "text/html; charset=utf-8") -> HTTPFields {
        [
            .contentType: type,
            .cacheControl: "no-store",
            .contentSecurityPolicy: "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                + "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
            HTTPField.Name("X-Content-Type-Options")!: "nosniff",
            HTTPField.Name("X-Frame-Options")!: "DENY",
            // same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on form posts.
            HTTPField.Name("Referrer-Policy")!: "same-origin",
        ]
    }

    func page(_ template: String, _ context: [String: Any], login: ConsoleLogins.Login?, status: HTTPResponse.Status = .ok) -> Response {
        var context = context
        if let login {
            context["me"] = ["user": login.identity.user, "groups": login.identity.groups.joined(separator: ", ")]
            context["csrf"] = login.csrf
            context["auditor"] = AdminAPI.isAuditor(login.identity)
        }
        context["nav_\(template)"] = true
        let html = library.render(Self.pruned(context), withTemplate: template) ?? "template \(template) failed"
        return Response(status: status, headers: Self.headers(), body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// Empty strings are left out, so `{{#field}}…{{/field}}` shows only when there is something.
    static func pruned(_ value: Any) -> Any {
        if let dictionary = value as? [String: Any] {
            var out: [String: Any] = [:]
            for (key, item) in dictionary {
                if let text = item as? String, text.isEmpty { continue }
                out[key] = pruned(item)
            }
            return out
        }
        if let array = value as? [[String: Any]] { return array.map { pruned($0) } }
        if let array = value as? [Any] { return array.map { pruned($0) } }
        return value
    }

    func redirect(_ location: String, cookies: [String] = []) -> Response {
        var headers = Self.headers()
        headers[.location] = location
        for cookie in cookies { headers.append(HTTPField(name: .setCookie, value: cookie)) }
        return Response(status: .seeOther, headers: headers)
    }

    func error(_ status: HTTPResponse.Status, _ message: String, login: ConsoleLogins.Login?) -> Response {
        page("error", ["status": Int(status.code), "message": message], login: login, status: status)
    }

    func cookie(_ name: String, _ value: String, maxAge: Int) -> String {
        "\(name)=\(value); Path=/console; HttpOnly; SameSite=Strict; Max-Age=\(maxAge)" + (secureCookies ? "; Secure" : "")
    }

    // MARK: - Requests

    static func cookies(_ request: Request) -> [String: String] {
        var result: [String: String] = [:]
        for header in request.headers[values: .cookie] {
            for part in header.split(separator: ";") {
                let pair = part.split(separator: "=", maxSplits: 1)
                guard pair.count == 2 else { continue }
                result[pair[0].trimmingCharacters(in: .whitespaces)] = pair[1].trimmingCharacters(in: .whitespaces)
            }
        }
        return result
    }

    func login(_ request: Request) -> ConsoleLogins.Login? {
        Self.cookies(request)[Self.cookie].flatMap { logins.lookup($0) }
    }

    func form(_ request: Request) async -> [String: String] {
        guard let buffer = try? await request.body.collect(upTo: 64 * 1024) else { return [:] }
        return FormData.parse(String(buffer: buffer))
    }

    /// A state-changing request: signed in, same origin, and the form's CSRF token matches.
    func checked(_ request: Request, _ form: [String: String]) -> ConsoleLogins.Login? {
        guard let login = login(request), ConsoleLogins.same(form["csrf"] ?? "", login.csrf) else { return nil }
        if let origin = request.headers[.origin], let host = request.head.authority {
            guard origin.hasSuffix("://" + host) else { return nil }
        }
        return login
    }

    // MARK: - Routes

    public func register(on router: Router<AdminRequestContext>) {
        let group = router.group("console")
        router.get("console") { _, _ in self.redirect("/console/sessions") }
        group.get("static/:file") { _, context in
            guard let asset = self.assets[context.parameters.get("file") ?? ""] else {
                return Response(status: .notFound, headers: Self.headers("text/plain"))
            }
            var headers = Self.headers(asset.type)
            headers[.cacheControl] = "public, max-age=3600"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: asset.bytes))
        }
        registerSignIn(group)
        registerSessions(group)
        registerReviews(group)
        registerAudit(group)
        registerConnections(group)
    }

    // MARK: Sign-in

    private func registerSignIn(_ group: RouterGroup<AdminRequestContext>) {
        group.get("signin") { request, _ in
            let configuration = self.services.operations.policy.configuration
            let nonce = ConsoleLogins.random()
            var context: [String: Any] = ["nonce": nonce, "dev": configuration.identity.devIssuer]
            if let provider = configuration.identity.oidc.first { context["oidc"] = ["issuer": provider.issuer] }
            if let message = request.uri.queryParameters["error"] { context["error"] = String(message.prefix(200)) }
            var response = self.page("signin", context, login: nil)
            response.headers.append(HTTPField(name: .setCookie, value: self.cookie(Self.preCookie, nonce, maxAge: 600)))
            return response
        }
        group.post("signin/dev") { request, context in
            let form = await self.form(request)
            guard let nonce = Self.cookies(request)[Self.preCookie], ConsoleLogins.same(form["nonce"] ?? "", nonce) else {
                return self.error(.forbidden, "the sign-in form expired; open it again", login: nil)
            }
            let configuration = self.services.operations.policy.configuration
            guard configuration.identity.devIssuer else { return self.error(.forbidden, "the dev sign-in is off", login: nil) }
            // A token is the proof: minting one needs the gateway's signing key (`sluice token`), so
            // reaching the admin port is not enough to pick a name and groups.
            let token = (form["token"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty, token.utf8.count <= 16 * 1024 else {
                return self.error(.badRequest, "paste a token from `sluice token --user NAME --groups G1,G2`", login: nil)
            }
            do {
                let identity = try await self.services.callers.authenticate(token: token, purpose: "console", source: context.source)
                return self.signedIn(identity)
            } catch {
                return self.error(.unauthorized, "sign-in failed: the token was not accepted", login: nil)
            }
        }
        group.get("signin/oidc") { request, _ in
            guard let provider = self.services.operations.policy.configuration.identity.oidc.first else {
                return self.error(.notFound, "no OIDC provider is configured", login: nil)
            }
            let oidc = ConsoleOIDC(provider: provider, fetch: self.services.fetch)
            do {
                let endpoints = try await oidc.endpoints()
                let (state, pending) = self.logins.beginOIDC(redirect: self.callbackURL(request))
                return self.redirect(try oidc.authorizationURL(endpoints, state: state, pending: pending))
            } catch {
                self.services.logger.warning("console sign-in: provider unavailable", metadata: ["error": "\(type(of: error))"])
                return self.error(.badGateway, "the identity provider is unavailable", login: nil)
            }
        }
        group.get("callback") { request, context in
            let query = request.uri.queryParameters
            guard let provider = self.services.operations.policy.configuration.identity.oidc.first,
                  let state = query["state"], let code = query["code"],
                  let pending = self.logins.finishOIDC(state: String(state)) else {
                return self.redirect("/console/signin?error=" + FormData.encode("the sign-in expired or was not started here"))
            }
            let oidc = ConsoleOIDC(provider: provider, fetch: self.services.fetch)
            do {
                let endpoints = try await oidc.endpoints()
                let idToken = try await oidc.exchange(code: String(code), pending: pending, endpoints: endpoints)
                let identity = try await self.services.callers.authenticate(token: idToken, purpose: "console", source: context.source)
                return self.signedIn(identity)
            } catch {
                self.services.logger.info("console sign-in refused", metadata: ["error": "\(type(of: error))"])
                return self.redirect("/console/signin?error=" + FormData.encode("sign-in failed"))
            }
        }
        group.post("signout") { request, _ in
            let form = await self.form(request)
            if let login = self.checked(request, form) { self.logins.remove(login.id) }
            return self.redirect("/console/signin", cookies: [self.cookie(Self.cookie, "", maxAge: 0)])
        }
    }

    private func signedIn(_ identity: Identity) -> Response {
        let login = logins.create(identity)
        services.audit.note("console.signin", actor: identity.user, [:])
        return redirect("/console/sessions", cookies: [cookie(Self.cookie, login.id, maxAge: Int(ConsoleLogins.lifetime.components.seconds)),
                                                       cookie(Self.preCookie, "", maxAge: 0)])
    }

    private func callbackURL(_ request: Request) -> String {
        if let base = services.operations.policy.configuration.publicURL {
            return (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/console/callback"
        }
        let host = request.head.authority ?? "127.0.0.1"
        return "http://\(host)/console/callback"
    }

    // MARK: Sessions

    private func registerSessions(_ group: RouterGroup<AdminRequestContext>) {
        group.get("sessions") { request, _ in
            guard let login = self.login(request) else { return self.redirect("/console/signin") }
            return self.page("sessions", try self.sessionList(request, identity: login.identity), login: login)
        }
        group.get("sessions/:id") { request, context in
            guard let login = self.login(request) else { return self.redirect("/console/signin") }
            guard let session = try self.visibleSession(context.parameters.get("id") ?? "", login.identity) else {
                return self.error(.notFound, "no such session, or not yours to see", login: login)
            }
            return self.page("session", try self.sessionDetail(session), login: login)
        }
        group.get("sessions/:id/cast") { request, context in
            guard let login = self.login(request) else { return Response(status: .unauthorized, headers: Self.headers("text/plain")) }
            guard let session = try self.visibleSession(context.parameters.get("id") ?? "", login.identity) else {
                return Response(status: .notFound, headers: Self.headers("text/plain"))
            }
            let cast = try Asciicast.export(session: session, store: self.services.records)
            return Response(status: .ok, headers: Self.headers("application/x-asciicast"), body: .init(byteBuffer: ByteBuffer(string: cast)))
        }
        group.get("sessions/:id/live") { request, context in
            guard let login = self.login(request) else { return Response(status: .unauthorized, headers: Self.headers("text/plain")) }
            guard let session = try self.visibleSession(context.parameters.get("id") ?? "", login.identity),
                  session.endedAt == nil, self.services.live.isOpen(session.id), let stream = self.services.hub.session(session.id) else {
                return Response(status: .notFound, headers: Self.headers("text/plain"))
            }
            // Subscribed first, then checked: a session that closed meanwhile ends the feed at once
            // (one that closes later finishes the stream itself).
            let open = self.services.live.isOpen(session.id)
            let terminal = session.kind == "ssh" || session.kind == "kubernetes"
            return Response(status: .ok, headers: Self.headers("text/event-stream"), body: ResponseBody { writer in
                try await writer.write(ByteBuffer(string: ": watching \(session.id)\n\n"))
                if open {
                    for await feed in stream {
                        guard case .item(let event) = feed else {
                            try await writer.write(ByteBuffer(string: ": heartbeat\n\n"))
                            continue
                        }
                        guard event.kind == .output else { continue }
                        let text = String(decoding: event.data, as: UTF8.self)
                        let json = #"{"terminal":\#(terminal),"text":"\#(JSONText.escaped(text))"}"#
                        try await writer.write(ByteBuffer(string: "event: output\ndata: \(json)\n\n"))
                    }
                }
                try await writer.write(ByteBuffer(string: "event: end\ndata: {}\n\n"))
                try await writer.finish(nil)
            })
        }
    }

    func visibleSession(_ id: String, _ identity: Identity) throws -> SessionRecord? {
        guard let session = try services.records.session(id: id) else { return nil }
        return AdminAPI.isAuditor(identity) || session.user == identity.user ? session : nil
    }

    static let pageSize = 50

    func sessionList(_ request: Request, identity: Identity) throws -> [String: Any] {
        let query = request.uri.queryParameters
        func value(_ key: String) -> String? {
            guard let raw = query[Substring(key)] else { return nil }
            let text = String(raw).trimmingCharacters(in: .whitespaces)
            return text.isEmpty ? nil : String(text.prefix(200))
        }
        var filter = SessionFilter()
        filter.user = AdminAPI.isAuditor(identity) ? value("user") : identity.user
        filter.connection = value("connection")
        filter.kind = value("protocol")
        filter.since = value("from").flatMap(Self.day).map { $0 }
        filter.until = value("to").flatMap(Self.day).map { $0 + 86_400_000_000 }
        let outcome = value("outcome")
        // Bounded, so (page - 1) * pageSize and page + 1 cannot overflow whatever the query says.
        let page = min(max(1, value("page").flatMap { Int($0) } ?? 1), Self.maximumPage)
        // Outcome filters look at counters: fetch a window and filter it.
        filter.limit = outcome == nil ? Self.pageSize + 1 : 1000
        filter.offset = outcome == nil ? (page - 1) * Self.pageSize : 0
        var sessions = try services.records.sessions(filter)
        if let outcome {
            sessions = sessions.filter { Self.outcomes($0).contains(outcome) }
            sessions = Array(sessions.dropFirst((page - 1) * Self.pageSize))
        }
        let more = sessions.count > Self.pageSize
        var pager: [String: Any] = [:]
        var base = query.filter { $0.key != "page" }.map { "\($0.key)=\(FormData.encode(String($0.value)))" }
        base.sort()
        let prefix = "/console/sessions?" + (base.isEmpty ? "" : base.joined(separator: "&") + "&")
        if page > 1 { pager["previous"] = prefix + "page=\(page - 1)" }
        if more { pager["next"] = prefix + "page=\(page + 1)" }
        return [
            "sessions": sessions.prefix(Self.pageSize).map(Self.sessionRow),
            "empty": sessions.isEmpty,
            "filter": ["user": value("user") ?? "", "connection": value("connection") ?? "", "from": value("from") ?? "",
                       "to": value("to") ?? ""] as [String: String],
            "auditor": AdminAPI.isAuditor(identity),
            "protocols": Self.options(["postgres", "ssh", "http", "kubernetes"], selected: value("protocol")),
            "outcomes": Self.options(["open", "sealed", "unsealed", "blocked", "reviewed", "masked"], selected: outcome),
            "pager": pager, "page": page,
        ]
    }

    static func options(_ names: [String], selected: String?) -> [[String: Any]] {
        names.map { name in
            let chosen: Bool = selected.map { $0 == name } ?? false
            return ["name": name, "selected": chosen]
        }
    }

    /// The last page the sessions list offers.
    static let maximumPage = 100_000

    /// `YYYY-MM-DD` (UTC) in microseconds, for years 1970 through 9999 (nil otherwise: no trap on
    /// `99999999-01-01`).
    static func day(_ text: String) -> Int64? {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd"
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.locale = Locale(identifier: "en_US_POSIX")
        guard text.utf8.count == 10, let date = formatter.date(from: text) else { return nil }
        let seconds = date.timeIntervalSince1970
        guard seconds.isFinite, seconds >= 0, seconds <= 253_402_214_400 else { return nil }
        return Int64(seconds) * 1_000_000
    }

    static func outcomes(_ session: SessionRecord) -> Set<String> {
        var result: Set<String> = [session.endedAt == nil ? "open" : (session.seal != nil ? "sealed" : "unsealed")]
        if (session.counters["blocked"] ?? 0) > 0 { result.insert("blocked") }
        if (session.counters["reviewed"] ?? 0) > 0 { result.insert("reviewed") }
        if session.counters.keys.contains(where: { $0.hasPrefix("masked:") }) { result.insert("masked") }
        if session.endedAt != nil && session.seal == nil { result.insert("unsealed") }
        return result
    }

    static func time(_ micros: Int64?) -> String {
        guard let micros else { return "" }
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.locale = Locale(identifier: "en_US_POSIX")
        return formatter.string(from: Date(timeIntervalSince1970: Double(micros) / 1_000_000)) + " UTC"
    }

    /// Time since the session started, for its timeline.
    static func offset(_ micros: Int64) -> String {
        String(format: "%.3f s", Double(micros) / 1_000_000)
    }

    static func sessionRow(_ session: SessionRecord) -> [String: Any] {
        let masked: Int = session.counters.filter { $0.key.hasPrefix("masked:") }.values.reduce(0, +)
        var row: [String: Any] = ["id": session.id, "user": session.user, "connection": session.connection, "protocol": session.kind]
        row["started"] = time(session.startedAt)
        row["ended"] = time(session.endedAt)
        row["open"] = session.endedAt == nil
        row["sealed"] = session.seal != nil
        row["blocked"] = session.counters["blocked"] ?? 0
        row["reviewed"] = session.counters["reviewed"] ?? 0
        row["masked"] = masked
        row["events"] = session.eventCount
        return row
    }

    func sessionDetail(_ session: SessionRecord) throws -> [String: Any] {
        var report = AuditReport()
        try services.audit.auditVerifier().verifySession(id: session.id, into: &report)
        let events = try services.records.events(session: session.id, after: -1, limit: 5000)
        let timeline = SessionTimeline(kind: session.kind, events: events)
        let decisions: [[String: Any]] = timeline.decisions.map { decision in
            let at = Self.offset(decision.at)
            switch decision.marker {
            case .decision(let verdict, let rule, _, _, let review):
                return ["at": at, "decision": verdict.rawValue, "command": decision.command, "review": review ?? "",
                        "rule": rule.map { "rule \($0)" } ?? "", "blocked": verdict == .block, "reviewed": verdict == .review]
            case .reviewOutcome(_, let result, let by, _):
                return ["at": at, "decision": result.rawValue, "command": decision.command, "review": "",
                        "rule": by.isEmpty ? "" : "by \(by.joined(separator: ", "))", "blocked": result != .approved, "reviewed": false]
            default:
                return ["at": at, "decision": decision.marker.summary, "command": decision.command, "review": "", "rule": "",
                        "blocked": false, "reviewed": false]
            }
        }
        let statements: [[String: Any]] = timeline.statements.map {
            ["at": Self.offset($0.at), "sql": $0.text, "preview": $0.result, "markers": $0.markers.map(\.summary)]
        }
        let requests: [[String: Any]] = timeline.requests.map {
            ["at": Self.offset($0.at), "request": $0.line, "status": $0.status.map(String.init) ?? "",
             "sizes": $0.sizes.map { "\($0.request) B in, \($0.response) B out" } ?? ""]
        }
        let notes: [[String: Any]] = timeline.notes.map { ["at": Self.offset($0.at), "text": $0.marker.summary] }
        let counts = session.counters.filter { $0.key.hasPrefix("masked:") }.sorted { $0.key < $1.key }
            .map { ["detector": String($0.key.dropFirst("masked:".count)), "count": $0.value] }
        let terminal = SessionTimeline.isTerminal(kind: session.kind, events: events)
        return [
            "session": Self.sessionRow(session), "groups": session.groups.joined(separator: ", "), "peer": session.peer,
            "end_reason": session.endReason ?? "", "verified": report.ok, "problems": report.problems.map(\.description),
            "seal": session.seal != nil ? "signed" : (session.endedAt == nil ? "open: sealed when it ends" : "missing (the gateway stopped abruptly)"),
            "decisions": decisions, "has_decisions": !decisions.isEmpty, "allowed": session.counters["allowed"] ?? 0,
            "counts": counts, "has_counts": !counts.isEmpty,
            "player": terminal, "statements": statements, "has_statements": !statements.isEmpty,
            "requests": requests, "has_requests": !requests.isEmpty, "live": session.endedAt == nil,
            "notes": notes, "has_notes": !notes.isEmpty,
            "truncated": events.count >= 5000,
        ]
    }

    // MARK: Reviews

    private func registerReviews(_ group: RouterGroup<AdminRequestContext>) {
        group.get("reviews") { request, _ in
            guard let login = self.login(request) else { return self.redirect("/console/signin") }
            let reviews = try await self.services.reviews.list(status: nil, limit: 500).filter { AdminAPI.visible($0, to: login.identity) }
            let sorted = reviews.filter { $0.status == .pending } + reviews.filter { $0.status != .pending }
            return self.page("reviews", ["reviews": sorted.prefix(200).map(Self.reviewRow), "empty": sorted.isEmpty,
                                         "pending": reviews.filter { $0.status == .pending }.count], login: login)
        }
        group.get("reviews/:id") { request, context in
            guard let login = self.login(request) else { return self.redirect("/console/signin") }
            guard let review = try await self.services.reviews.review(id: context.parameters.get("id") ?? ""),
                  AdminAPI.visible(review, to: login.identity) else {
                return self.error(.notFound, "no such review, or not yours to see", login: login)
            }
            var row = Self.reviewRow(review)
            // The requester never decides their own review: no buttons (and the server refuses).
            row["can_decide"] = review.status == .pending && review.requester != login.identity.user
                && (login.identity.isMember(of: review.approvers) || login.identity.groups.contains("admin"))
            row["own"] = review.requester == login.identity.user
            let flash = request.uri.queryParameters["done"].map { String($0.prefix(100)) }
            return self.page("review", ["review": row, "flash": flash ?? ""], login: login)
        }
        for action in ["approve", "deny"] {
            group.post("reviews/:id/\(action)") { request, context in
                let form = await self.form(request)
                guard let login = self.checked(request, form) else {
                    return self.error(.forbidden, "the form expired or came from elsewhere; reload and try again", login: self.login(request))
                }
                let id = context.parameters.get("id") ?? ""
                do {
                    if action == "approve" {
                        _ = try await self.services.reviews.approve(id: id, by: login.identity)
                    } else {
                        _ = try await self.services.reviews.deny(id: id, by: login.identity, reason: String((form["reason"] ?? "").prefix(500)))
                    }
                    return self.redirect("/console/reviews/\(FormData.encode(id))?done=\(action == "approve" ? "approved" : "denied")")
                } catch let error as ReviewError {
                    let status: HTTPResponse.Status = switch error.code {
                    case .notFound: .notFound
                    case .selfApproval, .notApprover: .forbidden
                    default: .conflict
                    }
                    return self.error(status, error.message, login: login)
                }
            }
        }
        group.get("events") { request, _ in
            guard self.login(request) != nil, let stream = self.services.hub.reviews() else {
                return Response(status: .unauthorized, headers: Self.headers("text/plain"))
            }
            let reviews = self.services.reviews
            let identity = self.login(request)!.identity
            return Response(status: .ok, headers: Self.headers("text/event-stream"), body: ResponseBody { writer in
                try await writer.write(ByteBuffer(string: ": reviews\n\n"))
                for await feed in stream {
                    guard case .item(let review) = feed else {
                        try await writer.write(ByteBuffer(string: ": heartbeat\n\n"))
                        continue
                    }
                    guard AdminAPI.visible(review, to: identity) else { continue }
                    let pending = (try? await reviews.list(status: "pending", limit: 1000).count) ?? 0
                    var row = Self.reviewRow(review)
                    row["pending"] = pending
                    let data = (try? JSONSerialization.data(withJSONObject: row.compactMapValues { $0 as? String ?? ($0 as? Int).map(String.init) })) ?? Data("{}".utf8)
                    try await writer.write(ByteBuffer(string: "event: review\ndata: \(String(decoding: data, as: UTF8.self))\n\n"))
                }
                try await writer.finish(nil)
            })
        }
    }

    static func reviewRow(_ review: ReviewRecord) -> [String: Any] {
        let view = Views.Review(review)
        return [
            "id": view.id, "kind": view.kind, "status": view.status, "requester": view.requester, "connection": view.connection,
            "session": view.session ?? "", "command": view.command ?? "(access to \(view.connection))", "reason": view.reason,
            "created_at": view.created_at, "deadline": view.deadline, "approvers": view.approvers.joined(separator: ", "),
            "min_approvals": view.min_approvals, "approvals": view.approvals.joined(separator: ", "),
            "denied_by": view.denied_by ?? "", "pending": view.status == "pending",
        ]
    }

    // MARK: Audit and connections

    private func registerAudit(_ group: RouterGroup<AdminRequestContext>) {
        group.get("audit") { request, _ in
            guard let login = self.login(request) else { return self.redirect("/console/signin") }
            guard AdminAPI.isAuditor(login.identity) else { return self.error(.forbidden, "auditors only", login: login) }
            let result = try await self.audits.latest(services: self.services, actor: login.identity.user)
            return self.page("audit", result.context, login: login)
        }
        group.post("audit/verify") { request, _ in
            let form = await self.form(request)
            guard let login = self.checked(request, form), AdminAPI.isAuditor(login.identity) else {
                return self.error(.forbidden, "auditors only", login: self.login(request))
            }
            _ = try await self.audits.run(services: self.services, actor: login.identity.user)
            return self.redirect("/console/audit")
        }
    }

    // MARK: Connections

    /// The credential keys the console's forms set (the rest of a definition is kept as stored).
    static let credentialFields = ["username", "password_env", "password_file", "private_key_file", "token_env", "token_file"]
    static let topFields = ["target", "database", "host_key", "ca_file"]

    private func registerConnections(_ group: RouterGroup<AdminRequestContext>) {
        group.get("connections") { request, _ in
            guard let login = self.login(request) else { return self.redirect("/console/signin") }
            var context: [String: Any] = ["connections": self.connections(for: login.identity, request: request),
                                          "admin": login.identity.groups.contains("admin"),
                                          "types": ["postgres", "ssh", "http", "kubernetes"]]
            if let message = request.uri.queryParameters["error"] { context["error"] = String(message.prefix(300)) }
            if let done = request.uri.queryParameters["done"] { context["done"] = String(done.prefix(100)) }
            return self.page("connections", context, login: login)
        }
        group.post("connections") { request, _ in
            let form = await self.form(request)
            guard let login = self.checked(request, form), login.identity.groups.contains("admin") else {
                return self.error(.forbidden, "admins only (and the form must come from this console)", login: self.login(request))
            }
            var object: [String: Any] = ["name": form["name"] ?? "", "type": form["type"] ?? ""]
            Self.apply(form, to: &object)
            return self.save(object, login: login, create: true, name: nil)
        }
        group.post("connections/:name") { request, context in
            let form = await self.form(request)
            guard let login = self.checked(request, form), login.identity.groups.contains("admin") else {
                return self.error(.forbidden, "admins only (and the form must come from this console)", login: self.login(request))
            }
            let name = context.parameters.get("name") ?? ""
            guard let spec = self.services.operations.runtimeSpec(name),
                  var object = (try? JSONSerialization.jsonObject(with: Data(spec.utf8))) as? [String: Any] else {
                return self.redirect("/console/connections?error=" + FormData.encode("\(name.prefix(64)) is not a runtime connection"))
            }
            Self.apply(form, to: &object)
            return self.save(object, login: login, create: false, name: name)
        }
        group.post("connections/:name/remove") { request, context in
            let form = await self.form(request)
            guard let login = self.checked(request, form), login.identity.groups.contains("admin") else {
                return self.error(.forbidden, "admins only (and the form must come from this console)", login: self.login(request))
            }
            let name = context.parameters.get("name") ?? ""
            do {
                try self.services.operations.removeConnection(name: name, actor: login.identity.user)
                return self.redirect("/console/connections?done=" + FormData.encode("removed \(name)"))
            } catch let error as ConnectionChangeError {
                return self.redirect("/console/connections?error=" + FormData.encode(error.reason))
            }
        }
    }

    /// A form's fields onto a definition: empty fields remove the key, groups and approvers are
    /// comma-separated lists.
    static func apply(_ form: [String: String], to object: inout [String: Any]) {
        func set(_ key: String, _ value: String?, in target: inout [String: Any]) {
            let trimmed = value?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            target[key] = trimmed.isEmpty ? nil : trimmed
        }
        for key in topFields where form[key] != nil { set(key, form[key], in: &object) }
        var credential = object["credential"] as? [String: Any] ?? [:]
        for key in credentialFields where form[key] != nil { set(key, form[key], in: &credential) }
        object["credential"] = credential.isEmpty ? nil : credential
        func list(_ text: String) -> [String] {
            text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        if let groups = form["groups"] {
            var access = object["access"] as? [String: Any] ?? [:]
            access["groups"] = list(groups)
            object["access"] = access
        }
        if let profile = form["profile"] {
            var masking = object["masking"] as? [String: Any] ?? [:]
            masking["profile"] = profile.isEmpty ? nil : profile
            object["masking"] = masking.isEmpty ? nil : masking
        }
        if let approvers = form["approvers"] {
            var reviews = object["reviews"] as? [String: Any] ?? [:]
            reviews["approvers"] = list(approvers).isEmpty ? nil : list(approvers)
            object["reviews"] = reviews.isEmpty ? nil : reviews
        }
    }

    private func save(_ object: [String: Any], login: ConsoleLogins.Login, create: Bool, name: String?) -> Response {
        do {
            let json = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            let connection = try services.operations.saveConnection(json: json, actor: login.identity.user, create: create, name: name)
            return redirect("/console/connections?done=" + FormData.encode((create ? "added " : "changed ") + connection.name)
                            + "#connection-" + connection.name)
        } catch let error as ConnectionChangeError {
            return redirect("/console/connections?error=" + FormData.encode(error.reason))
        } catch {
            return redirect("/console/connections?error=" + FormData.encode("the definition could not be read"))
        }
    }

    /// What the page shows of each connection the signed-in user may see: how to connect (the
    /// exact line for this user), who may use it, its guardrails and masking, and — for admins,
    /// on runtime connections — the fields to change it.
    func connections(for identity: Identity, request: Request? = nil) -> [[String: Any]] {
        let problems = services.operations.credentialProblems()
        let origins = services.operations.connectionOrigins()
        let isAdmin = identity.groups.contains("admin")
        let configuration = services.operations.policy.configuration
        let client = Views.ClientConfig(configuration)
        let authority = request?.head.authority ?? configuration.listen.admin?.description ?? "127.0.0.1:8080"
        let gateway = configuration.publicURL.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 } ?? "http://\(authority)"
        let host = URL(string: gateway)?.host ?? "127.0.0.1"
        return configuration.connections
            .filter { AdminAPI.mayView($0, identity) }
            .map { connection in
                let view = Views.connection(connection)
                let plan = try? ConnectPlan.make(connection: view, client: client, gateway: gateway, gatewayHost: host, user: identity.user,
                                                 token: "$(sluice token)", folder: "~/.config/sluice", sluice: "sluice", extra: [])
                let runtime = origins[connection.name]?.source == "runtime"
                var entry: [String: Any] = [
                    "name": connection.name, "type": connection.kind.rawValue, "target": connection.target,
                    "groups": connection.accessGroups.joined(separator: ", "), "requires_grant": connection.requiresGrant,
                    "profile": connection.masking.profile,
                    "group_profiles": connection.masking.groups.sorted { $0.key < $1.key }.map { "\($0.key) → \($0.value)" }.joined(separator: ", "),
                    "unmasked": connection.masking.unmaskedGroups.joined(separator: ", "),
                    "columns": connection.masking.columns.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value.rawValue)" }.joined(separator: ", "),
                    "has_rules": !connection.guardrails.isEmpty,
                    "rules": connection.guardrails.enumerated().map { index, rule in
                        ["index": index + 1, "action": rule.action.rawValue, "match": rule.match ?? "", "class": rule.commandClass ?? "",
                         "message": rule.message ?? ""]
                    },
                    "approvers": connection.reviews.approvers.joined(separator: ", "),
                    "credential_problem": problems[connection.name] ?? "", "has_credential_problem": problems[connection.name] != nil,
                    "credential_mode": connection.credential.justInTime?.mode.replacingOccurrences(of: "_", with: " ") ?? "",
                    "source": runtime ? "runtime" : "file",
                    "updated_by": origins[connection.name]?.updatedBy ?? "",
                    "connect_command": "sluice connect \(connection.name)",
                    "connect_line": plan?.display ?? "",
                ]
                if isAdmin && runtime {
                    var fields: [String: String] = [:]
                    for key in Self.topFields { fields[key] = "" }
                    for key in Self.credentialFields { fields[key] = "" }
                    if let spec = services.operations.runtimeSpec(connection.name),
                       let object = (try? JSONSerialization.jsonObject(with: Data(spec.utf8))) as? [String: Any] {
                        for key in Self.topFields { fields[key] = object[key] as? String ?? "" }
                        let credential = object["credential"] as? [String: Any] ?? [:]
                        for key in Self.credentialFields { fields[key] = credential[key] as? String ?? "" }
                    }
                    fields["groups"] = connection.accessGroups.joined(separator: ", ")
                    fields["approvers"] = connection.reviews.approvers.joined(separator: ", ")
                    // Empty values are pruned from the page's context; a missing key renders as "".
                    entry["edit"] = fields.merging(["name": connection.name]) { $1 }
                }
                return entry
            }
    }
}
