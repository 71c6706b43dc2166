import Adapters
import Foundation
import Hummingbird
import NIOCore

/// The admin listener's JSON API (see docs/api.md). Bearer tokens as everywhere; `auditor` reads
/// every session and the audit chain, `admin` also manages reviews and reloads; everyone else sees
/// only their own sessions and the reviews they requested or may decide.
public struct AdminAPI: Sendable {
    /// What the admin API may use of the gateway (``AdminServices``), nothing more.
    public let services: AdminServices
    /// Re-reads the configuration source (file or embedded defaults) for `POST /api/reload`.
    public let reloadSource: @Sendable () throws -> GatewayConfiguration

    public init(runtime: GatewayRuntime, reloadSource: @escaping @Sendable () throws -> GatewayConfiguration) {
        self.init(services: AdminServices(runtime: runtime), reloadSource: reloadSource)
    }

    public init(services: AdminServices, reloadSource: @escaping @Sendable () throws -> GatewayConfiguration) {
        self.services = services
        self.reloadSource = reloadSource
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    struct ErrorBody: Encodable {
        struct Detail: Encodable {
            var code: String
            var message: String
        }
        var error: Detail
    }

    static func failure(_ status: HTTPResponse.Status, _ code: String, _ message: String) -> Response {
        json(ErrorBody(error: .init(code: code, message: message)), status: status)
    }

    /// Thrown inside handlers to answer with an error document.
    struct Refusal: Error {
        var response: Response
    }

    func identity(_ request: Request, _ context: AdminRequestContext) async throws -> Identity {
        guard let header = request.headers[.authorization] else {
            throw Refusal(response: Self.failure(.unauthorized, "unauthenticated", "send Authorization: Bearer TOKEN"))
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw Refusal(response: Self.failure(.unauthorized, "unauthenticated", "send Authorization: Bearer TOKEN"))
        }
        do {
            return try await services.callers.authenticate(token: String(parts[1]), purpose: "admin", source: context.source)
        } catch let error as TokenError {
            throw Refusal(response: Self.failure(.unauthorized, error.code.rawValue, error.message))
        } catch let error as GovernorError where error.code == .throttled {
            throw Refusal(response: Self.failure(.tooManyRequests, error.code.rawValue, error.message))
        }
    }

    static func isAuditor(_ identity: Identity) -> Bool { identity.isMember(of: ["auditor", "admin"]) }

    /// Wraps a handler: authenticates, turns refusals into their responses.
    func handle(_ request: Request, _ context: AdminRequestContext, _ body: @Sendable (Identity) async throws -> Response) async -> Response {
        do {
            return try await body(try await identity(request, context))
        } catch let refusal as Refusal {
            return refusal.response
        } catch let error as ReviewError {
            let status: HTTPResponse.Status = switch error.code {
            case .notFound: .notFound
            case .selfApproval, .notApprover: .forbidden
            case .notPending, .alreadyApproved: .conflict
            case .invalidRequest: .badRequest
            }
            return Self.failure(status, error.code.rawValue, error.message)
        } catch let error as ConnectionChangeError {
            let status: HTTPResponse.Status = switch error.code {
            case .invalid: .unprocessableContent
            case .conflict, .fromFile: .conflict
            case .notFound: .notFound
            case .storeUnavailable: .serviceUnavailable
            }
            return Self.failure(status, error.code.rawValue, error.reason)
        } catch let error as ConfigurationError {
            return Self.failure(.unprocessableContent, "config_invalid", error.description)
        } catch {
            services.logger.error("admin request failed", metadata: ["error": "\(type(of: error))"])
            return Self.failure(.internalServerError, "internal", "the request failed; see the gateway log")
        }
    }

    func visibleSession(_ id: String, to identity: Identity) throws -> SessionRecord {
        guard let session = try services.records.session(id: id) else {
            throw Refusal(response: Self.failure(.notFound, "not_found", "no session \(id.prefix(64))"))
        }
        guard Self.isAuditor(identity) || session.user == identity.user else {
            throw Refusal(response: Self.failure(.forbidden, "forbidden", "only auditors see other users' sessions"))
        }
        return session
    }

    static func visible(_ review: ReviewRecord, to identity: Identity) -> Bool {
        isAuditor(identity) || review.requester == identity.user || identity.isMember(of: review.approvers)
    }

    struct Body: Decodable {
        var reason: String?
        var connection: String?
        var duration: String?
    }

    /// Who sees a connection in listings: auditors, its users and its approvers.
    static func mayView(_ connection: GatewayConfiguration.Connection, _ identity: Identity) -> Bool {
        isAuditor(identity) || identity.isMember(of: connection.accessGroups) || identity.isMember(of: connection.reviews.approvers)
    }

    /// A request body of at most 64 KiB, as bytes.
    static func rawBody(_ request: Request) async throws -> Data {
        do {
            return Data(buffer: try await request.body.collect(upTo: GatewayRuntime.maximumConnectionSpecBytes))
        } catch {
            throw Refusal(response: failure(.contentTooLarge, "too_large", "the body is larger than \(GatewayRuntime.maximumConnectionSpecBytes) bytes"))
        }
    }

    func decodeBody(_ request: Request) async throws -> Body {
        let buffer = try await request.body.collect(upTo: 64 * 1024)
        if buffer.readableBytes == 0 { return Body() }
        guard let body = try? JSONDecoder().decode(Body.self, from: Data(buffer: buffer)) else {
            throw Refusal(response: Self.failure(.badRequest, "bad_request", "expected a JSON object"))
        }
        return body
    }

    public func router() -> Router<AdminRequestContext> {
        let router = Router(context: AdminRequestContext.self)
        let services = self.services
        router.get("healthz") { _, _ in
            // "ok" while the store records (503 "store_unavailable" otherwise: new sessions are
            // refused, so a load balancer should send them elsewhere); connections that cannot
            // work yet are listed by name.
            struct Health: Encodable {
                var status: String
                var store: String
                var open_sessions: String
                var credential_problems: [String: String]
            }
            let problem = services.operations.storeProblem()
            let health = Health(status: problem == nil ? "ok" : "store_unavailable", store: problem ?? "ok",
                                open_sessions: String(services.live.openSessionCount),
                                credential_problems: services.operations.credentialProblems())
            return Self.json(health, status: problem == nil ? .ok : .serviceUnavailable)
        }
        router.get("metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(string: services.operations.metricsText())))
        }
        let api = router.group("api")
        api.get("me") { request, context in
            await self.handle(request, context) { identity in Self.json(identity) }
        }
        api.get("sessions") { request, context in
            await self.handle(request, context) { identity in
                var filter = SessionFilter()
                let query = request.uri.queryParameters
                filter.user = query["user"].map(String.init)
                filter.connection = query["connection"].map(String.init)
                filter.kind = query["protocol"].map(String.init)
                filter.limit = query["limit"].flatMap { Int(String($0)) } ?? 100
                filter.offset = query["offset"].flatMap { Int(String($0)) } ?? 0
                if !Self.isAuditor(identity) { filter.user = identity.user }
                return Self.json(try services.records.sessions(filter).map(Views.Session.init))
            }
        }
        api.get("sessions/:id") { request, context in
            await self.handle(request, context) { identity in
                let session = try self.visibleSession(context.parameters.get("id") ?? "", to: identity)
                return Self.json(Views.Session(session))
            }
        }
        api.get("sessions/:id/events") { request, context in
            await self.handle(request, context) { identity in
                let session = try self.visibleSession(context.parameters.get("id") ?? "", to: identity)
                let after = request.uri.queryParameters["after"].flatMap { Int(String($0)) } ?? -1
                let limit = min(5000, request.uri.queryParameters["limit"].flatMap { Int(String($0)) } ?? 1000)
                return Self.json(try services.records.events(session: session.id, after: after, limit: limit).map(Views.Event.init))
            }
        }
        api.get("sessions/:id/asciicast") { request, context in
            await self.handle(request, context) { identity in
                let session = try self.visibleSession(context.parameters.get("id") ?? "", to: identity)
                let cast = try Asciicast.export(session: session, store: services.records)
                return Response(status: .ok, headers: [.contentType: "application/x-asciicast",
                                                       .contentDisposition: "attachment; filename=\"\(session.id).cast\""],
                                body: .init(byteBuffer: ByteBuffer(string: cast)))
            }
        }
        api.get("sessions/:id/verify") { request, context in
            await self.handle(request, context) { identity in
                let session = try self.visibleSession(context.parameters.get("id") ?? "", to: identity)
                var report = AuditReport()
                try services.audit.auditVerifier().verifySession(id: session.id, into: &report)
                return Self.json(report)
            }
        }
        api.get("reviews") { request, context in
            await self.handle(request, context) { identity in
                let status = request.uri.queryParameters["status"].map(String.init)
                let reviews = try await services.reviews.list(status: status, limit: 500)
                return Self.json(reviews.filter { Self.visible($0, to: identity) }.map(Views.Review.init))
            }
        }
        api.get("reviews/:id") { request, context in
            await self.handle(request, context) { identity in
                let id = context.parameters.get("id") ?? ""
                guard let review = try await services.reviews.review(id: id) else {
                    return Self.failure(.notFound, "review_not_found", "no review \(id.prefix(64))")
                }
                guard Self.visible(review, to: identity) else {
                    return Self.failure(.forbidden, "forbidden", "not your review")
                }
                return Self.json(Views.Review(review))
            }
        }
        api.post("reviews/:id/approve") { request, context in
            await self.handle(request, context) { identity in
                let review = try await services.reviews.approve(id: context.parameters.get("id") ?? "", by: identity)
                return Self.json(Views.Review(review))
            }
        }
        api.post("reviews/:id/deny") { request, context in
            await self.handle(request, context) { identity in
                let body = try await self.decodeBody(request)
                let review = try await services.reviews.deny(id: context.parameters.get("id") ?? "", by: identity,
                                                            reason: body.reason ?? "")
                return Self.json(Views.Review(review))
            }
        }
        api.post("access-requests") { request, context in
            await self.handle(request, context) { identity in
                let body = try await self.decodeBody(request)
                guard let name = body.connection, let connection = services.operations.policy.connection(name) else {
                    return Self.failure(.badRequest, "unknown_connection", "name an existing connection")
                }
                guard let seconds = ConfigNode.parseDuration(body.duration ?? "1h") else {
                    return Self.failure(.badRequest, "bad_request", "duration such as 30m or 2h")
                }
                let review = try await services.reviews.requestAccess(identity: identity, connection: connection.config,
                                                                     duration: .seconds(seconds), reason: body.reason ?? "")
                return Self.json(Views.Review(review), status: .created)
            }
        }
        api.get("client-config") { _, _ in
            // What `sluice login` and `sluice connect` need before they hold a token: the
            // identity providers to sign in with and the listeners to connect to. No secret.
            Self.json(Views.ClientConfig(services.operations.policy.configuration))
        }
        api.get("connections") { request, context in
            await self.handle(request, context) { identity in
                let origins = services.operations.connectionOrigins()
                let isAdmin = identity.groups.contains("admin")
                let connections = services.operations.policy.configuration.connections.filter { Self.mayView($0, identity) }
                return Self.json(connections.map {
                    Views.connection($0, origin: origins[$0.name], spec: isAdmin ? services.operations.runtimeSpec($0.name) : nil)
                })
            }
        }
        api.get("connections/:name") { request, context in
            await self.handle(request, context) { identity in
                let name = context.parameters.get("name") ?? ""
                guard let connection = services.operations.policy.connection(name)?.config, Self.mayView(connection, identity) else {
                    if identity.groups.contains("admin"), let why = services.operations.skippedConnections[name] {
                        return Self.failure(.notFound, "connection_not_served", why)
                    }
                    return Self.failure(.notFound, "connection_not_found", "no connection \(name.prefix(64)) you may see")
                }
                let spec = identity.groups.contains("admin") ? services.operations.runtimeSpec(name) : nil
                return Self.json(Views.connection(connection, origin: services.operations.connectionOrigins()[name], spec: spec))
            }
        }
        api.post("connections") { request, context in
            await self.handle(request, context) { identity in
                guard identity.groups.contains("admin") else { return Self.failure(.forbidden, "forbidden", "admins only") }
                let body = try await Self.rawBody(request)
                let connection = try services.operations.saveConnection(json: body, actor: identity.user, create: true, name: nil)
                return Self.json(Views.connection(connection, origin: services.operations.connectionOrigins()[connection.name],
                                                  spec: services.operations.runtimeSpec(connection.name)), status: .created)
            }
        }
        api.put("connections/:name") { request, context in
            await self.handle(request, context) { identity in
                guard identity.groups.contains("admin") else { return Self.failure(.forbidden, "forbidden", "admins only") }
                let body = try await Self.rawBody(request)
                let connection = try services.operations.saveConnection(json: body, actor: identity.user, create: false,
                                                                       name: context.parameters.get("name") ?? "")
                return Self.json(Views.connection(connection, origin: services.operations.connectionOrigins()[connection.name],
                                                  spec: services.operations.runtimeSpec(connection.name)))
            }
        }
        api.delete("connections/:name") { request, context in
            await self.handle(request, context) { identity in
                guard identity.groups.contains("admin") else { return Self.failure(.forbidden, "forbidden", "admins only") }
                let name = context.parameters.get("name") ?? ""
                try services.operations.removeConnection(name: name, actor: identity.user)
                return Self.json(["status": "removed", "connection": name])
            }
        }
        api.post("connections/:name/test") { request, context in
            await self.handle(request, context) { identity in
                guard identity.groups.contains("admin") else { return Self.failure(.forbidden, "forbidden", "admins only") }
                let name = context.parameters.get("name") ?? ""
                guard let connection = services.operations.policy.connection(name)?.config else {
                    return Self.failure(.notFound, "connection_not_found", "no connection \(name.prefix(64))")
                }
                let report = await ConnectionTester.test(connection)
                services.audit.note("connection.tested", actor: identity.user, ["connection": name, "ok": String(report.ok)])
                return Self.json(report)
            }
        }
        api.get("audit/verify") { request, context in
            await self.handle(request, context) { identity in
                guard Self.isAuditor(identity) else { return Self.failure(.forbidden, "forbidden", "auditors only") }
                let report = try services.audit.auditVerifier().verify()
                services.audit.note("audit.verified", actor: identity.user, ["ok": String(report.ok), "problems": String(report.problems.count)])
                return Self.json(report)
            }
        }
        api.get("audit/control") { request, context in
            await self.handle(request, context) { identity in
                guard Self.isAuditor(identity) else { return Self.failure(.forbidden, "forbidden", "auditors only") }
                let after = request.uri.queryParameters["after"].flatMap { Int(String($0)) } ?? -1
                let events = try services.records.controlEvents(after: after, limit: 1000).map { event in
                    ["seq": String(event.seq), "time": Views.iso(event.time) ?? "", "kind": event.kind, "actor": event.actor,
                     "detail": event.detail]
                }
                return Self.json(events)
            }
        }
        api.post("reload") { request, context in
            await self.handle(request, context) { identity in
                guard identity.groups.contains("admin") else { return Self.failure(.forbidden, "forbidden", "admins only") }
                try services.operations.reload(actor: identity.user, source: self.reloadSource)
                return Self.json(["status": "reloaded"])
            }
        }
        return router
    }
}
