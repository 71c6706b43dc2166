# Sluice — the two commands of README.md:
#   make run    masks the sample corpus with `sluice mask` (the gateway's `serve` comes with issue 3)
#   make test   installs what is missing, builds, runs every test and the engine checks
SWIFT ?= swift
SAMPLE ?= corpora/samples/app_log.txt

.PHONY: deps build release run test unit-test engine-check bench clean

deps:
	@bash scripts/install-deps.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

run: release
	.build/release/sluice mask --report .build/mask-report.json < $(SAMPLE)
	@echo "--- matches per detector (counts only):" >&2
	@cat .build/mask-report.json >&2

unit-test: deps
	$(SWIFT) test --parallel

engine-check: release
	bash scripts/engine-check.sh

test: unit-test engine-check

bench: deps
	bash Benchmarks/compare-engines.sh

clean:
	rm -rf .build
