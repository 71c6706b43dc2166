import Foundation
import MaskEngine

/// The stream masker, written in random chunks with random flushes, against the reference engine
/// (every candidate confirmed by Hyperscan) masking the same bytes in one piece: the outputs
/// must be equal. The value masker must agree with itself on the same value.
enum MaskerFuzz {
    static let detectors: [Detector] = {
        do {
            return try CorpusLoader.load(directories: [FuzzFiles.corpora])
        } catch {
            fatalError("cannot load the detector corpora at \(FuzzFiles.corpora) (set SLUICE_CORPORA)")
        }
    }()

    static let engine: MaskingEngine = {
        do { return try MaskingEngine(detectors: detectors) } catch { fatalError("engine: \(type(of: error))") }
    }()

    static let reference: MaskingEngine = {
        do { return try MaskingEngine(detectors: detectors, softwareConfirmers: false) } catch { fatalError("reference: \(type(of: error))") }
    }()

    static func chunkedAgainstReference(_ input: [UInt8]) {
        var rest = input[...]
        var choices = Choices(&rest)
        let bytes = Array(rest)
        do {
            let one = try reference.makeStreamMasker()
            let expected = try one.write(bytes) + one.finish()
            let masker = try engine.makeStreamMasker()
            var out: [UInt8] = []
            for chunk in choices.chunks(bytes, largest: 300) {
                out += try masker.write(chunk)
            }
            out += try masker.finish()
            if out != expected {
                fatalError("chunked output (\(out.count) bytes) differs from the reference (\(expected.count) bytes)")
            }
            let values = engine.makeValueMasker()
            let first = try values.mask(bytes)
            let second = try values.mask(bytes)
            if first != second { fatalError("the value masker gave two answers for one value") }
        } catch {
            fatalError("masking failed: \(type(of: error))")
        }
    }
}
