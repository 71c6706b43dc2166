# Sluice — the two commands of README.md:
#   make run    installs what is missing, builds, and runs `sluice serve` on its embedded defaults
#   make test   installs what is missing, builds, runs every test, the engine checks and the integration tests
SWIFT ?= swift
SAMPLE ?= corpora/samples/app_log.txt

.PHONY: deps build release run mask-sample test unit-test tsan engine-check integration-test fuzz fuzz-smoke bench clean

deps:
	@bash scripts/install-deps.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

run: release
	.build/release/sluice serve

mask-sample: release
	.build/release/sluice mask --report .build/mask-report.json < $(SAMPLE)
	@echo "--- matches per detector (counts only):" >&2
	@cat .build/mask-report.json >&2

# The store tests also run against a throw-away PostgreSQL (scripts/with-postgres.sh).
unit-test: deps
	bash scripts/with-postgres.sh $(SWIFT) test --parallel

# The unit tests under the thread sanitizer, in their own build folder (docs/operations.md):
# any report fails the run.
tsan: deps
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path .build-tsan
	bash scripts/with-postgres.sh bash -o pipefail -c '$(SWIFT) test --skip-build --sanitize=thread --scratch-path .build-tsan 2>&1 | tee .build-tsan/tsan.log'
	@! grep -q 'WARNING: ThreadSanitizer' .build-tsan/tsan.log

engine-check: release
	bash scripts/engine-check.sh

integration-test: build
	bash Tests/IntegrationTests/gateway-core.sh
	bash Tests/IntegrationTests/postgres.sh
	bash Tests/IntegrationTests/ssh.sh
	bash Tests/IntegrationTests/http.sh
	bash Tests/IntegrationTests/kubernetes.sh
	bash Tests/IntegrationTests/console.sh
	bash Tests/IntegrationTests/deploy.sh
	bash Tests/IntegrationTests/scale.sh
	bash Tests/IntegrationTests/access.sh

# The libFuzzer harnesses (docs/fuzzing.md): `make fuzz` runs each for FUZZ_SECONDS (60 by
# default); the test suite runs each for 20 seconds so a regression in a harness fails the build.
fuzz: deps
	bash scripts/fuzz.sh

fuzz-smoke: deps
	FUZZ_SECONDS=20 bash scripts/fuzz.sh

test: unit-test tsan engine-check integration-test fuzz-smoke

bench: deps
	bash Benchmarks/compare-engines.sh

clean:
	rm -rf .build .build-tsan
