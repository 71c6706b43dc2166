import Testing
@testable import Adapters

@Suite struct SQLStatementsTests {
    /// The classes of a query that must hold exactly one statement.
    func classesOfOnlyStatement(_ query: String, sourceLocation: SourceLocation = #_sourceLocation) -> [String] {
        let statements = SQLStatements.split(query)
        #expect(statements.count == 1, "expected one statement in \(query.debugDescription)", sourceLocation: sourceLocation)
        return statements.first?.classes ?? []
    }

    // MARK: Guardrail examples

    @Test func dropInsideBlockCommentIsNotADrop() {
        let classes = classesOfOnlyStatement("/* drop table x */ select 1")
        #expect(classes.contains("read"))
        #expect(!classes.contains("drop"))
    }

    @Test func dropInsideStringIsARead() {
        #expect(classesOfOnlyStatement("select 'drop table x'") == ["read"])
    }

    @Test func semicolonSplitsStatements() {
        let statements = SQLStatements.split("select 1; drop table x")
        #expect(statements.count == 2)
        #expect(statements.first?.text == "select 1")
        #expect(statements.first?.classes == ["read"])
        #expect(statements.last?.text == "drop table x")
        #expect(statements.last?.classes.contains("drop") == true)
        #expect(statements.last?.classes.contains("ddl") == true)
    }

    @Test func keywordsAreCaseInsensitive() {
        let statements = SQLStatements.split("DrOp   TaBlE x")
        #expect(statements.first?.classes.contains("drop") == true)
        #expect(statements.first?.keywords == ["drop", "table", "x"])
    }

    @Test func dollarQuotedBodyHidesSemicolons() {
        #expect(classesOfOnlyStatement("select $$; drop table x; $$") == ["read"])
    }

    @Test func taggedDollarQuoteIgnoresOtherTags() {
        #expect(classesOfOnlyStatement("select $a$ $$ ; $a$") == ["read"])
    }

    @Test func escapeStringBackslashEscapesQuote() {
        #expect(classesOfOnlyStatement("select E'\\'; drop table x; --'") == ["read"])
    }

    @Test func quotedIdentifierIsNotAKeyword() {
        #expect(classesOfOnlyStatement("select \"drop\" from t") == ["read"])
    }

    @Test func lineCommentIsIgnored() {
        #expect(classesOfOnlyStatement("-- drop table x\nselect 1") == ["read"])
    }

    @Test func blockCommentsNest() {
        #expect(classesOfOnlyStatement("/* nested /* drop */ still comment */ select 1") == ["read"])
    }

    @Test func deleteWithoutWhereIsFlagged() {
        #expect(classesOfOnlyStatement("delete from t").contains("delete_without_where"))
    }

    @Test func deleteWithWhereIsNotFlagged() {
        let classes = classesOfOnlyStatement("DELETE FROM t WHERE id = 1")
        #expect(classes.contains("write"))
        #expect(!classes.contains("delete_without_where"))
    }

    @Test func whereInsideCommentDoesNotCount() {
        #expect(classesOfOnlyStatement("delete from t -- where x").contains("delete_without_where"))
    }

    @Test func whereInsideStringDoesNotCount() {
        #expect(classesOfOnlyStatement("update t set a = 'where'").contains("update_without_where"))
    }

    @Test func copyToProgramIsFlagged() {
        #expect(classesOfOnlyStatement("copy t to program 'rm -rf /'").contains("copy_program"))
    }

    @Test func copyQueryToStdoutIsAReadAndCopyOut() {
        let classes = classesOfOnlyStatement("copy (select 1) to stdout")
        #expect(classes.contains("read"))
        #expect(classes.contains("copy_out"))
    }

    @Test func copyFromStdinIsAWriteAndCopyIn() {
        let classes = classesOfOnlyStatement("copy t from stdin")
        #expect(classes.contains("write"))
        #expect(classes.contains("copy_in"))
    }

    @Test func setRoleIsFlagged() {
        #expect(classesOfOnlyStatement("set role admin").contains("set_role"))
    }

    @Test func grantIsDCL() {
        let classes = classesOfOnlyStatement("grant all on t to bob")
        #expect(classes.contains("grant"))
        #expect(classes.contains("dcl"))
    }

    @Test func emptyStatementsAreDropped() {
        let statements = SQLStatements.split("select 1;;  ; ")
        #expect(statements.count == 1)
        #expect(statements.first?.text == "select 1")
    }

    @Test func emptyQueryHasNoStatements() {
        #expect(SQLStatements.split("").isEmpty)
        #expect(SQLStatements.split("  \n\t ").isEmpty)
        #expect(SQLStatements.split("-- only a comment\n /* and another */ ;").isEmpty)
    }

    @Test func unterminatedStringIsOneStatement() {
        let statements = SQLStatements.split("select 'abc")
        #expect(statements.count == 1)
        #expect(statements.first?.text == "select 'abc")
        #expect(statements.first?.classes == ["read"])
    }

    // MARK: Splitting details

    @Test func textKeepsCommentsAndDropsSemicolonAndSurroundingSpace() {
        let statements = SQLStatements.split("  /* lead */ select 1 -- tail\n ;\n\n select 2  ")
        #expect(statements.map(\.text) == ["/* lead */ select 1 -- tail", "select 2"])
        #expect(statements.map(\.keywords) == [["select"], ["select"]])
    }

    @Test func semicolonInsideParenthesesDoesNotSplit() {
        let query = "create rule r as on insert to t do instead (insert into a values (1); insert into b values (2))"
        #expect(classesOfOnlyStatement(query) == ["ddl", "create", "procedural"])
    }

    @Test func unbalancedParenthesisCannotHideAStatement() {
        let statements = SQLStatements.split("select ((1); drop table x")
        #expect(statements.count == 2)
        #expect(statements.last?.classes.contains("drop") == true)
    }

    @Test func carriageReturnEndsLineComment() {
        let statements = SQLStatements.split("select 1 -- c\r; drop table x")
        #expect(statements.count == 2)
        #expect(statements.last?.classes.contains("drop") == true)
    }

    @Test func escapeStringContinuationKeepsBackslashEscapes() {
        // PostgreSQL continues E'a' with the next line's '…' under E-string rules, so `\'` is an
        // escaped quote, the string ends after `''`, and the DROP is a second statement.
        let statements = SQLStatements.split("select E'a'\n'\\'' ; drop table x; --'")
        #expect(statements.count == 2)
        #expect(statements.last?.classes.contains("drop") == true)
    }

    @Test func standardStringDoesNotTreatBackslashAsEscape() {
        let statements = SQLStatements.split("select '\\'; drop table x")
        #expect(statements.count == 2)
        #expect(statements.last?.classes.contains("drop") == true)
    }

    @Test func parametersAndDollarsInIdentifiersAreNotDollarQuotes() {
        #expect(SQLStatements.split("select $1; drop table x").count == 2)
        #expect(SQLStatements.split("select a$$b from t; drop table x").count == 2)
    }

    @Test func statementsBeyondTheLimitAreFoldedIntoTheLast() {
        let query = String(repeating: "select 1;", count: SQLStatements.maximumStatements + 5) + "drop table x"
        let statements = SQLStatements.split(query)
        #expect(statements.count == SQLStatements.maximumStatements)
        #expect(statements.last?.classes == ["read", "ddl", "drop"])
        #expect(statements.last?.text.hasSuffix("drop table x") == true)
    }

    // MARK: Classes

    @Test(arguments: [
        ("select 1", ["read"]),
        ("SELECT * INTO copy_t FROM t", ["write", "ddl", "create"]),
        ("with x as (select 1) select * from x", ["read"]),
        ("with d as (delete from t returning *) select * from d", ["read", "write", "delete_without_where"]),
        ("with x as (select 1) delete from t where id in (select * from x)", ["write"]),
        ("with x as (select 1) update t set a = 1", ["write", "update_without_where"]),
        ("with recursive r(n) as (values (1) union all select n + 1 from r) search depth first by n set o select * from r", ["read"]),
        ("(select 1) union (select 2)", ["read"]),
        ("show search_path", ["read"]),
        ("values (1), (2)", ["read"]),
        ("table t", ["read"]),
        ("fetch 10 from c", ["read"]),
        ("explain select 1", ["read"]),
        ("explain delete from t", ["read"]),
        ("explain analyze delete from t", ["write", "delete_without_where"]),
        ("explain (analyze, buffers) update t set a = 1 where id = 2", ["write"]),
        ("explain (analyze false) delete from t", ["read"]),
        ("insert into t values (1) on conflict do nothing", ["write"]),
        ("update t set a = 1 where id = 2", ["write"]),
        ("update t set a = (select b from u where u.id = t.id)", ["write", "update_without_where"]),
        ("delete from t using u where t.id = u.id", ["write"]),
        ("merge into t using s on t.id = s.id when matched then delete", ["write"]),
        ("call p()", ["write", "procedural"]),
        ("do $$ begin delete from t; end $$", ["write", "procedural"]),
        ("create table t (a int)", ["ddl", "create"]),
        ("alter table t add column b int", ["ddl", "alter"]),
        ("drop table t", ["ddl", "drop"]),
        ("truncate t", ["write", "ddl", "truncate"]),
        ("comment on table t is 'x'", ["ddl"]),
        ("reindex table t", ["ddl"]),
        ("grant select on t to bob", ["dcl", "grant"]),
        ("revoke all on t from bob", ["dcl", "revoke"]),
        ("copy t to program 'gzip > /tmp/t.gz'", ["read", "copy_program"]),
        ("copy t from program 'curl x'", ["write", "copy_program"]),
        ("copy t from stdin", ["write", "copy_in"]),
        ("copy t (a, b) to stdout with (format csv)", ["read", "copy_out"]),
        ("copy t from '/etc/passwd'", ["write", "copy_file"]),
        ("copy (delete from t returning *) to stdout", ["read", "write", "delete_without_where", "copy_out"]),
        ("set role admin", ["set_role"]),
        ("set local role admin", ["set_role"]),
        ("set session authorization bob", ["set_role"]),
        ("set \"ROLE\" = admin", ["set_role"]),
        ("reset role", ["set_role"]),
        ("reset all", ["set", "set_role"]),
        ("set search_path = public", ["set"]),
        ("set session characteristics as transaction read only", ["set"]),
        ("begin", ["transaction"]),
        ("start transaction isolation level serializable", ["transaction"]),
        ("commit", ["transaction"]),
        ("end", ["transaction"]),
        ("rollback to savepoint s", ["transaction"]),
        ("savepoint s", ["transaction"]),
        ("release s", ["transaction"]),
        ("prepare transaction 'x'", ["transaction"]),
        ("abort", ["transaction"]),
        ("vacuum analyze t", ["utility"]),
        ("analyze t", ["utility"]),
        ("listen ch", ["utility"]),
        ("notify ch", ["utility"]),
        ("discard plans", ["utility"]),
        ("deallocate all", ["utility"]),
        ("prepare q (int) as select $1", ["read", "utility"]),
        ("prepare q as delete from t", ["write", "delete_without_where", "utility"]),
        ("execute q (1)", ["utility"]),
        ("lock table t in exclusive mode", ["utility"]),
        ("checkpoint", ["utility"]),
        ("load 'plugin'", ["utility"]),
        ("declare c cursor for select * from t", ["read", "utility"]),
        ("frobnicate the database", ["unknown"]),
        ("'just a string'", ["unknown"]),
    ])
    func classesMatchTheStatement(query: String, expected: [String]) {
        #expect(classesOfOnlyStatement(query) == expected, "\(query)")
    }

    // MARK: Robustness

    /// A small deterministic generator (SplitMix64) so the random inputs are reproducible.
    struct SplitMix64: RandomNumberGenerator {
        var state: UInt64

        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var value = state
            value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
            value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
            return value ^ (value >> 31)
        }
    }

    @Test func randomFragmentSoupNeverCrashesOrYieldsEmptyStatements() {
        let fragments: [[UInt8]] = [
            "'", "\"", "$$", "$a$", "/*", "*/", "--", "\n", "\r", ";", "E'", "U&'", "\\", "(", ")", " ",
            "$1", "drop", "table", "select", "delete", "update", "where", "with x as (", "copy", "set role",
        ].map { Array($0.utf8) } + [[0xFF], [0xC3], [0x80], [0x00]]
        var generator = SplitMix64(state: 0x5EED)
        for _ in 0..<2000 {
            var bytes: [UInt8] = []
            for _ in 0..<Int.random(in: 0...40, using: &generator) {
                bytes += fragments[Int.random(in: 0..<fragments.count, using: &generator)]
            }
            let query = String(decoding: bytes, as: UTF8.self)
            let statements = SQLStatements.split(query)
            for statement in statements {
                #expect(!statement.text.isEmpty, "\(query.debugDescription)")
                #expect(!statement.classes.isEmpty, "\(query.debugDescription)")
                #expect(statement.keywords.count <= 4)
            }
        }
    }

    @Test func pathologicalInputsFinish() {
        let deepParentheses = String(repeating: "(", count: 100_000) + "select 1" + String(repeating: ")", count: 100_000)
        #expect(SQLStatements.split(deepParentheses).map(\.classes) == [["read"]])
        let deepWith = String(repeating: "with x as (", count: 10_000) + "delete from t"
        #expect(SQLStatements.split(deepWith).count == 1)
        let nestedComments = String(repeating: "/*", count: 100_000) + " drop table x"
        #expect(SQLStatements.split(nestedComments).isEmpty)
        let tag = String(repeating: "a", count: 10_000)
        let longTag = "select $" + tag + "$" + String(repeating: "$" + tag.dropLast() + "b", count: 20)
        #expect(SQLStatements.split(longTag).count == 1)
    }
}

@Suite struct SQLStatementCodeTests {
    @Test func codeDropsCommentsAndNeutralisesStrings() {
        #expect(SQLStatements.split("/* drop table x */ select 1").map(\.code) == ["select 1"])
        #expect(SQLStatements.split("select 'drop table x', $$drop table y$$").map(\.code) == ["select '?', '?'"])
        #expect(SQLStatements.split("select 1; DROP   TABLE\n x").map(\.code) == ["select 1", "DROP TABLE x"])
        #expect(SQLStatements.split("select a.b from pg_catalog.pg_authid -- c\n where x = 1").map(\.code)
                == ["select a.b from pg_catalog.pg_authid where x = 1"])
    }
}

/// Statements inside statements, code-running statements and server functions (security issue).
@Suite struct SQLStatementNestingTests {
    @Test func dataModifyingCTEReportsTheDeleteAsANestedStatement() {
        let statement = SQLStatements.split("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x")[0]
        #expect(statement.classes.contains("delete_without_where"))
        #expect(statement.nested.map(\.code) == ["DELETE FROM t RETURNING *", "SELECT * FROM x"])
        #expect(statement.nested[0].classes == ["write", "delete_without_where"])
    }

    @Test func prepareReportsItsBodyAndItsName() {
        let statement = SQLStatements.split("PREPARE \"Del\" (int) AS DELETE FROM t WHERE id = $1")[0]
        #expect(statement.preparedRole == .prepare)
        #expect(statement.preparedName == "Del")
        #expect(statement.nested.map(\.code) == ["DELETE FROM t WHERE id = $1"])
        let execute = SQLStatements.split("EXECUTE Del(1)")[0]
        #expect(execute.preparedRole == .execute && execute.preparedName == "del")
        #expect(SQLStatements.split("DEALLOCATE PREPARE ALL")[0].preparedName == "*")
        #expect(SQLStatements.split("PREPARE TRANSACTION 'x'")[0].preparedRole == nil)
    }

    @Test func copyQueryExplainAnalyzeAndCursorBodiesAreNested() {
        #expect(SQLStatements.split("COPY (DELETE FROM t RETURNING *) TO STDOUT")[0].nested.map(\.code) == ["DELETE FROM t RETURNING *"])
        #expect(SQLStatements.split("EXPLAIN ANALYZE UPDATE t SET a = 1")[0].nested.map(\.code) == ["UPDATE t SET a = 1"])
        #expect(SQLStatements.split("EXPLAIN UPDATE t SET a = 1")[0].nested.isEmpty, "plain EXPLAIN runs nothing")
        #expect(SQLStatements.split("DECLARE c CURSOR FOR SELECT 1")[0].nested.map(\.code) == ["SELECT 1"])
    }

    @Test func codeRunningStatementsAreProcedural() {
        for query in ["DO $$ BEGIN EXECUTE 'COPY t TO PROGRAM ''id'''; END $$", "CALL p()",
                      "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'",
                      "create or replace procedure p() language plpgsql as $$ begin end $$",
                      "CREATE TRIGGER t AFTER INSERT ON x EXECUTE FUNCTION f()", "CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()",
                      "CREATE OR REPLACE RULE r AS ON INSERT TO t DO INSTEAD NOTHING", "CREATE TRUSTED LANGUAGE plx HANDLER h",
                      "create constraint trigger c after insert on t for each row execute function f()"] {
            #expect(SQLStatements.split(query)[0].classes.contains("procedural"), "\(query)")
        }
        for query in ["CREATE TABLE t (a int)", "CREATE TEMP TABLE t (a int)", "CREATE OR REPLACE VIEW v AS SELECT 1"] {
            #expect(!SQLStatements.split(query)[0].classes.contains("procedural"), "\(query)")
        }
    }

    @Test func alterSystemHasItsOwnClass() {
        #expect(SQLStatements.split("ALTER SYSTEM SET archive_command = 'x'")[0].classes == ["ddl", "alter", "alter_system"])
        #expect(SQLStatements.split("ALTER TABLE t ADD c int")[0].classes == ["ddl", "alter"])
    }

    @Test func serverFileAndAdminFunctionsAreFoundAnywhere() {
        #expect(SQLStatements.split("select pg_read_file('/etc/passwd')")[0].classes.contains("file_access"))
        #expect(SQLStatements.split("select * from (select pg_catalog.pg_ls_dir('.')) x")[0].classes.contains("file_access"))
        #expect(SQLStatements.split("select \"pg_read_binary_file\"('x')")[0].classes.contains("file_access"))
        #expect(SQLStatements.split("select lo_export(1, '/tmp/x')")[0].classes.contains("file_access"))
        #expect(SQLStatements.split("select pg_terminate_backend(1)")[0].classes.contains("admin_function"))
        #expect(SQLStatements.split("select U&\"\\0070g_read_file\"('x')")[0].classes.contains("file_access"))
        #expect(!SQLStatements.split("select 'pg_read_file(1)'")[0].classes.contains("file_access"), "a string is not a call")
        #expect(!SQLStatements.split("select pg_read_file from t")[0].classes.contains("file_access"), "a column is not a call")
    }

    @Test func setConfigOfTheRoleIsASetRole() {
        #expect(SQLStatements.split("select set_config('role', 'admin', false)")[0].classes.contains("set_role"))
        #expect(SQLStatements.split("select set_config(name, 'x', false) from t")[0].classes.contains("set_role"))
        #expect(!SQLStatements.split("SELECT pg_catalog.set_config('search_path', '', false)")[0].classes.contains("set_role"))
    }

    @Test func standardConformingStringsOffMakesBackslashEscapeQuotes() {
        let query = "select 'a\\' , $$' ; drop table x; -- $$"
        #expect(SQLStatements.split(query, standardConformingStrings: true).count == 1)
        let off = SQLStatements.split(query, standardConformingStrings: false)
        #expect(off.count == 2)
        #expect(off[1].classes.contains("drop"))
        let national = "select N'a\\' ; drop table x; --'"
        #expect(SQLStatements.split(national, standardConformingStrings: false).count == 1, "N'…' escapes like '…' when off")
        #expect(SQLStatements.split(national, standardConformingStrings: true).count == 2)
        let bits = "select B'1\\' ; select 2; --'"
        #expect(SQLStatements.split(bits, standardConformingStrings: false).map(\.code)
                == SQLStatements.split(bits, standardConformingStrings: true).map(\.code), "bit strings take no escapes")
    }
}
