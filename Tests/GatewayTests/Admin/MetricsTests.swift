import Testing
@testable import Gateway

@Suite struct MetricsTests {
    @Test func seriesCountedThroughAHandleAreExposedWithThoseAddedByName() {
        let metrics = Metrics()
        let handle = metrics.counter("sluice_bytes_scanned_total", labels: ["protocol": "http"])
        handle.add(1000)
        handle.add(24)
        // The same series by name and through a second handle: one line, one sum.
        metrics.add("sluice_bytes_scanned_total", 6, labels: ["protocol": "http"])
        metrics.counter("sluice_bytes_scanned_total", labels: ["protocol": "http"]).add(10)
        #expect(metrics.value("sluice_bytes_scanned_total", labels: ["protocol": "http"]) == 1040)
        let text = metrics.render()
        #expect(text.contains(#"sluice_bytes_scanned_total{protocol="http"} 1040"#))
        #expect(text.components(separatedBy: "sluice_bytes_scanned_total{").count == 2)
    }

    @Test func theLatencyHistogramCountsEachObservationInEveryBoundAboveIt() {
        let metrics = Metrics()
        metrics.observe("sluice_masking_latency_seconds", .microseconds(30))
        metrics.observe("sluice_masking_latency_seconds", .milliseconds(2))
        let text = metrics.render()
        #expect(text.contains(#"sluice_masking_latency_seconds_bucket{le="1e-05"} 0"#))
        #expect(text.contains(#"sluice_masking_latency_seconds_bucket{le="5e-05"} 1"#))
        #expect(text.contains(#"sluice_masking_latency_seconds_bucket{le="0.005"} 2"#))
        #expect(text.contains(#"sluice_masking_latency_seconds_bucket{le="+Inf"} 2"#))
        #expect(text.contains("sluice_masking_latency_seconds_count 2"))
        #expect(text.contains("sluice_masking_latency_seconds_sum 0.00203"))
    }

    @Test func handlesPastTheSeriesLimitCountButAreNotExposed() {
        let metrics = Metrics()
        for index in 0..<Metrics.maximumSeries { metrics.add("filler", 1, labels: ["n": String(index)]) }
        let late = metrics.counter("sluice_values_masked_total", labels: ["detector": "email"])
        late.add(3)
        #expect(late.current == 3)
        #expect(!metrics.render().contains("sluice_values_masked_total{"))
    }
}
