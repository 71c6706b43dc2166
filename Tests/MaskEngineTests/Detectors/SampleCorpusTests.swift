import Foundation
import Testing
@testable import MaskEngine

@Suite struct SampleCorpusTests {
    struct Label: Decodable {
        var file: String
        var kind: String
        var value: String
        var positive: Bool
    }

    static func count(_ needle: [UInt8], in haystack: [UInt8]) -> Int {
        guard !needle.isEmpty, haystack.count >= needle.count else { return 0 }
        var found = 0
        var index = 0
        while index <= haystack.count - needle.count {
            if haystack[index] == needle[0], haystack[index..<(index + needle.count)].elementsEqual(needle) {
                found += 1
                index += needle.count
            } else {
                index += 1
            }
        }
        return found
    }

    @Test(arguments: ["api_json.txt", "psql.txt", "app_log.txt", "shell.txt", "csv.txt", "html.txt", "xml.txt", "config.txt", "email.txt", "traceback.txt"])
    func everyPlantedValueIsMaskedAndEveryDecoyKept(_ file: String) throws {
        let labelsText = try String(contentsOfFile: Fixtures.samples + "/labels.jsonl", encoding: .utf8)
        let labels = try labelsText.split(separator: "\n").map { try JSONDecoder().decode(Label.self, from: Data($0.utf8)) }.filter { $0.file == file }
        #expect(labels.count > 50)
        let input = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.samples + "/" + file)))
        let output = try maskOneShot(input)
        // A multi-line value (a PEM block) becomes one label; no other replacement joins or splits lines.
        let plantedLines = labels.filter(\.positive).reduce(0) { $0 + $1.value.filter { $0 == "\n" }.count }
        #expect(output.filter { $0 == 10 }.count == input.filter { $0 == 10 }.count - plantedLines, "a replacement changed the lines of \(file)")
        var planted: [String: Int] = [:]
        for label in labels where label.positive { planted[label.value, default: 0] += 1 }
        for label in labels {
            let value = Array(label.value.utf8)
            if label.positive {
                #expect(Self.count(value, in: output) <= Self.count(value, in: input) - planted[label.value, default: 0],
                        "\(label.kind) planted in \(file) was not masked")
            } else {
                #expect(Self.count(value, in: output) >= Self.count(value, in: input), "\(label.kind) decoy in \(file) was lost")
            }
        }
    }
}
