import Foundation
import Testing
@testable import MaskEngine

/// The families of values found in layouts beyond JSON and logs (config files, XML, HTML, CSV,
/// e-mail, tracebacks): each is masked, what surrounds it is kept, and no line is joined or split.
@Suite struct LayoutFamilyTests {
    struct Case: CustomStringConvertible, Sendable {
        var input: String
        /// Must be gone from the output.
        var secrets: [String]
        /// Must still be in the output.
        var kept: [String]
        var description: String { input.debugDescription }
    }

    static let cases: [Case] = [
        Case(input: "db-1.prod.internal:5432:app:app:ucltep-npfiou-ojaso-qjxr36\n10.0.0.5:*:*:postgres:W@Tkp+8xQ2\n",
             secrets: ["ucltep-npfiou-ojaso-qjxr36", "W@Tkp+8xQ2", "10.0.0.5"], kept: ["db-1.prod.internal:5432:app:app:"]),
        Case(input: "machine api.heroku.com\n  login ana.smith@example.com\n  password 0f3e2a1b-77aa-4c1e-9d2b-5f6e7a8b9c0d\n",
             secrets: ["ana.smith", "0f3e2a1b-77aa"], kept: ["machine api.heroku.com\n  login ", "\n  password "]),
        Case(input: "  password       = \"Summer2026#\"\n  port           = 5432\n",
             secrets: ["Summer2026#"], kept: ["port           = 5432"]),
        Case(input: "auth:\n    postgresPassword: \"W@Tkp+8xQ2\"\n    username: app\n",
             secrets: ["W@Tkp+8xQ2"], kept: ["username: app"]),
        Case(input: "<server>\n  <password>?0Bx12!ew++XWX</password>\n</server>\n<password>${env.NEXUS_PASSWORD}</password>\n",
             secrets: ["?0Bx12!ew++XWX"], kept: ["${env.NEXUS_PASSWORD}", "</password>\n</server>"]),
        Case(input: "<wsse:Password Type=\"#PasswordText\">khr7Os!vB3</wsse:Password>\n",
             secrets: ["khr7Os!vB3"], kept: ["</wsse:Password>"]),
        Case(input: "<input type=\"password\" name=\"pw\" value=\"Summer2026#\" autocomplete=\"off\">\n",
             secrets: ["Summer2026#"], kept: ["autocomplete=\"off\">"]),
        Case(input: "User name,Password,Access key ID,Secret access key\nana.smith,Summer2026#,AKIAHPMNWESCPY4DPGUY,rRnHyd8tCXK7gkgeet+GtZg2FrUXY0oA4C+9srmH\n",
             secrets: ["Summer2026#", "AKIAHPMNWESCPY4DPGUY", "rRnHyd8tCXK7gkgeet"], kept: ["ana.smith,"]),
        Case(input: "aws.secretKey=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\nminio.secret-key=d1hZsme2F8h8rvbIubWbQq70cwaX2Ho15w+1TrBy\n",
             secrets: ["8TbcNUUyg9tcoIhHGnyLeWjyRqMvlxTCbFU/EUte", "d1hZsme2F8h8rvbIubWbQq70cwaX2Ho15w+1TrBy"], kept: ["aws.secretKey="]),
        Case(input: "Received: from mx ([IPv6:2a00:1450:4864:20::62f])\n\tby mx.example.com\n",
             secrets: ["2a00:1450:4864:20::62f"], kept: ["[IPv6:", "])\n\tby mx.example.com"]),
        Case(input: "<SSN>164120278</SSN> ssn=268458731 account 123456789\n",
             secrets: ["164120278", "268458731"], kept: ["account 123456789"]),
        Case(input: "https://news.example.com/u?e=dmitri.haddad66%40mail.example.org&id=7\n",
             secrets: ["dmitri.haddad66"], kept: ["&id=7"]),
        Case(input: "call 020 3705 5931 or 0152 1675 4327 today\n",
             secrets: ["3705 5931", "1675 4327"], kept: ["today"]),
        Case(input: "2024-01-05 4111111111111111\n4111 1111 1111 1111 12/27 123\nref 078-05-1121 4111111111111111\n",
             secrets: ["4111111111111111", "4111 1111 1111"], kept: ["2024-01-05 ", " 12/27 123"]),
        Case(input: "Mozilla/5.0 (Windows NT 6.1; rv:1.9.1.20) Gecko/20100101 Firefox/3.5.1\n",
             secrets: [], kept: ["rv:1.9.1.20"]),
        Case(input: "apiVersion: v1\ndata:\n  password: MWYyZDFlMmU2N2Rm\n  username: YWRtaW4=\nkind: Secret\n",
             secrets: ["MWYyZDFlMmU2N2Rm", "YWRtaW4="], kept: ["\n  username: ", "\nkind: Secret\n"]),
        Case(input: "data:\n  password: MWYyZDFlMmU2N2Rm\n{\n  code: 'ECONNREFUSED',\n  port: 6379\n}\n",
             secrets: ["MWYyZDFlMmU2N2Rm"], kept: ["port: 6379"]),
        Case(input: "    volumes:\n      - data:/var/lib/postgresql/data\n    environment:\n      POSTGRES_USER: postgres\n      POSTGRES_PASSWORD: JlwLwinziy94s4ancpOe\n",
             secrets: ["JlwLwinziy94s4ancpOe"], kept: ["POSTGRES_USER: postgres"]),
        Case(input: "    command: redis-server --requirepass 73WGMAPu5kOHRpCANUPd\n",
             secrets: ["73WGMAPu5kOHRpCANUPd"], kept: ["--requirepass "]),
    ]

    @Test(arguments: cases)
    func theValueIsMaskedItsSurroundingsAndLinesKept(_ sample: Case) throws {
        let input = Array(sample.input.utf8)
        let output = text(try maskOneShot(input))
        for secret in sample.secrets { #expect(!output.contains(secret), "\(secret) survived in \(output.debugDescription)") }
        for kept in sample.kept { #expect(output.contains(kept), "\(kept) was lost in \(output.debugDescription)") }
        #expect(output.filter { $0 == "\n" }.count == sample.input.filter { $0 == "\n" }.count, "line structure changed")
    }

    @Test(arguments: cases)
    func everySplitPointGivesTheOneShotOutput(_ sample: Case) throws {
        let input = Array(sample.input.utf8)
        let expected = try maskOneShot(input)
        for split in 0...input.count {
            let masker = try Fixtures.engine.makeStreamMasker()
            let out = try masker.write(Array(input[..<split])) + masker.write(Array(input[split...])) + masker.finish()
            #expect(out == expected, "split at \(split)")
        }
        #expect(try maskChunked(input, sizes: [1]) == expected)
    }

    @Test func theLayoutDetectorsDoNotGrowTheHoldback() {
        // Triggered detectors hold back twice their width: kept at 255 so the JWT header's 512
        // still sets the stream's holdback (docs/masking-engine.md).
        #expect(Fixtures.engine.holdback == 515)
    }

    @Test func aSpanMatchLeavesTheBytesAroundItsSecretToOtherDetectors() throws {
        // The .netrc match starts at `login`; the address after it is still an email.
        let output = text(try maskOneShot(Array("login ana.smith@example.com password Xy12!abcQ\n".utf8)))
        #expect(output == "login [EMAIL] password [PASSWORD]\n")
    }

    @Test func theNewlineAfterASecretValueIsKept() throws {
        // secret_assignment took the newline as its terminator and overlapped the Secret's match.
        let output = text(try maskOneShot(Array("data:\n  password: MWYyZDFlMmU2N2Rm\n  b: x\n".utf8)))
        #expect(output == "data:\n  password: [SECRET]\n  b: x\n")
        let printout = "apiVersion: v1\ndata:\n  tls.key: LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0t\r\n  user: YWRtaW4=\nkind: Secret\n"
        #expect(text(try maskOneShot(Array(printout.utf8))) == "apiVersion: v1\ndata:\n  tls.key: [K8S_SECRET]\r\n  user: [K8S_SECRET]\nkind: Secret\n")
    }
}
