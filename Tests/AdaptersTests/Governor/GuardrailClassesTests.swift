import NIOHTTP1
import Testing
@testable import Adapters

@Suite struct GuardrailClassesTests {
    /// Every class an adapter reports for these commands must be one a guardrail may name.
    func expectKnown(_ commands: [Command], _ protocolName: String, sourceLocation: SourceLocation = #_sourceLocation) {
        for command in commands {
            for name in command.classes {
                #expect(GuardrailClasses.problem(with: name, protocolName: protocolName) == nil,
                        "\(protocolName): \(command.text) reports \(name)", sourceLocation: sourceLocation)
            }
        }
    }

    @Test func everyClassThePostgresClassifierReportsIsKnown() {
        for statementClass in SQLStatementClass.allCases {
            #expect(GuardrailClasses.problem(with: statementClass.name, protocolName: "postgres") == nil)
        }
        let queries = ["select 1", "delete from t", "update t set a = 1", "drop table t", "copy t to program 'x'",
                       "copy t from '/etc/passwd'", "do $$ begin end $$", "alter system set x = 1", "set role admin",
                       "select pg_read_file('x')", "select pg_terminate_backend(1)", "grant all on t to u", "vacuum", "begin"]
        expectKnown(queries.flatMap { SQLStatements.split($0).map { Command(text: $0.code, classes: $0.classes) } }, "postgres")
    }

    @Test func everyClassTheSSHAdapterReportsIsKnown() {
        expectKnown([SSHCommands.exec("scp -t /tmp"), SSHCommands.exec("rsync --server . x"), SSHCommands.exec("rm -rf $DIR"),
                     SSHCommands.exec("echo $(id)"), SSHCommands.shellLine("ls -l"), SSHCommands.subsystem("sftp"),
                     SSHCommands.portForward("db:5432"), Command(text: "shell", classes: ["shell_session"])], "ssh")
    }

    @Test func everyClassTheHTTPAdapterReportsForStandardMethodsIsKnown() {
        let methods: [HTTPMethod] = [.GET, .HEAD, .POST, .PUT, .DELETE, .CONNECT, .OPTIONS, .TRACE, .PATCH, .PROPFIND, .MKCOL, .COPY, .MOVE]
        expectKnown(methods.flatMap { HTTPCommands.requests(method: $0, uri: "/x") }, "http")
    }

    @Test func everyClassTheKubernetesAdapterReportsIsKnown() {
        let requests = [("GET", "/api/v1/namespaces/prod/pods"), ("GET", "/api/v1/namespaces/prod/pods/web-1/log"),
                        ("POST", "/api/v1/namespaces/prod/pods/web-1/exec"), ("GET", "/api/v1/namespaces/prod/secrets/db"),
                        ("PATCH", "/apis/apps/v1/namespaces/prod/deployments/web/scale"), ("DELETE", "/api/v1/namespaces/prod"),
                        ("GET", "/version"), ("GET", "/api/v1/../x"),
                        ("POST", "/api/v1/namespaces/prod/pods/web-1/portforward"), ("GET", "/api/v1/watch/pods")]
        expectKnown(requests.map { KubernetesRequest.parse(method: $0.0, path: $0.1, query: nil).command }, "kubernetes")
        // A custom resource's bare name is not nameable (it could be a misspelt built-in one);
        // every other class of its request is.
        let custom = KubernetesRequest.parse(method: "GET", path: "/apis/example.com/v1/widgets", query: nil).command
        expectKnown([Command(text: custom.text, classes: custom.classes.filter { $0 != "widgets" })], "kubernetes")
    }

    @Test func aMisspeltClassIsRefusedWithTheNearestKnownOne() throws {
        let problem = try #require(GuardrailClasses.problem(with: "delet_without_where", protocolName: "postgres"))
        #expect(problem.contains("did you mean 'delete_without_where'"))
        #expect(problem.contains("known: "))
        #expect(GuardrailClasses.problem(with: "sftpp", protocolName: "ssh")?.contains("did you mean 'sftp'") == true)
        #expect(GuardrailClasses.problem(with: "secrts", protocolName: "kubernetes")?.contains("did you mean 'secrets'") == true)
        #expect(GuardrailClasses.problem(with: "purge", protocolName: "http")?.contains("match: '^METHOD '") == true)
        // A class of another protocol is not one of this one.
        #expect(GuardrailClasses.problem(with: "exec", protocolName: "postgres") != nil)
        #expect(GuardrailClasses.problem(with: "drop", protocolName: "ssh") != nil)
    }

    @Test func kubernetesOpenSetsAreSpelledWithAPrefix() {
        for name in ["group:apps", "resource:widgets", "resource:widgets/status", "pods/exec", "deployments/scale"] {
            #expect(GuardrailClasses.problem(with: name, protocolName: "kubernetes") == nil, "\(name)")
        }
        for name in ["widgets", "pods/exce", "group:", "resource:"] {
            #expect(GuardrailClasses.problem(with: name, protocolName: "kubernetes") != nil, "\(name)")
        }
        // A rule on a custom resource matches it through its `resource:` class.
        let request = KubernetesRequest.parse(method: "GET", path: "/apis/example.com/v1/widgets", query: nil)
        #expect(request.command.classes.contains("resource:widgets"))
    }

    @Test func editDistanceCountsInsertionsDeletionsAndSubstitutions() {
        func distance(_ a: String, _ b: String) -> Int { GuardrailClasses.editDistance(Array(a.utf8), Array(b.utf8)) }
        #expect(distance("", "") == 0)
        #expect(distance("", "abc") == 3)
        #expect(distance("abc", "") == 3)
        #expect(distance("drop", "drop") == 0)
        #expect(distance("delet", "delete") == 1)
        #expect(distance("sftp", "ftps") == 2)
        #expect(distance("kitten", "sitting") == 3)
    }
}
