# promocodes — developer entry points. Only Go is needed for run/test/bench.
GO ?= go
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
BIN := bin/promocodes
# The same binary with the fault injection hooks (-tags faults, pkg/app/faults.go), for the end-to-end
# fault tests only; never shipped. Building it recompiles two packages and links once more.
FAULT_BIN := bin/promocodes-faults
PROMOCODES_TEST_POSTGRES_DSN ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable

.PHONY: build build-faults run test test-integration test-adversarial bench bench-redeem bench-redeem-sqlite fuzz lint up down clean vendor-web

# A cold build compiles hundreds of packages (minutes on 2 cores): `go build -v` names each one it
# compiles and .ci/progress.awk turns that into a line every 25 packages (nothing when all is cached).
PROGRESS := awk -f .ci/progress.awk
# Every package the module and its tests import (test-only dependencies included), to compile them
# ahead of vet and test with progress shown.
ALL_DEPS = $$($(GO) list -deps -test ./... | grep -v -e ' ' -e '\.test$$')

build:
	@echo "make build: bin/promocodes (a cold build prints a line every 25 packages it compiles)"
	@# -buildvcs=auto: stamp the git revision (promocodes version) even where GOFLAGS says -buildvcs=false
	CGO_ENABLED=0 $(GO) build -v -buildvcs=auto -o $(BIN) ./cmd/promocodes 2>&1 | $(PROGRESS) -v what=build

build-faults:
	CGO_ENABLED=0 $(GO) build -buildvcs=auto -tags faults -o $(FAULT_BIN) ./cmd/promocodes

## run: the whole system on embedded defaults (broker, SQLite, API, generators, shovel)
run: build
	./$(BIN) dev --config configs/dev.yaml

## test: unit tests and the embedded-broker/SQLite tests (PostgreSQL tests skip unless a DSN is set)
# Tests run verbose through .ci/testfilter.awk: package results plus the output (and reason) of every
# skipped or failed test.
TESTFILTER := awk -f .ci/testfilter.awk

# Each step says what it does first; the two compile steps show a cold build's progress (on a warm
# cache they print nothing and take seconds).
test:
	@echo "make test 1/5: compile every package and test dependency"
	$(GO) build -v $(ALL_DEPS) 2>&1 | $(PROGRESS) -v what=compile
	@echo "make test 2/5: go vet (and the fault injection hooks, built only with -tags faults)"
	$(GO) vet ./...
	$(GO) vet -tags faults ./pkg/app/
	@echo "make test 3/5: compile them again with the race detector"
	$(GO) build -race -v $(ALL_DEPS) 2>&1 | $(PROGRESS) -v what='compile -race'
	@echo "make test 4/5: go test -race ./... (a line per package as it finishes; skipped and failed tests with their output)"
	$(GO) test -race -count=1 -skip 'Adversarial' -v ./... 2>&1 | $(TESTFILTER)
	@echo "make test 5/5: TestTenMillionDistinct at full size (the race detector makes it check 1,000,000 codes)"
	$(GO) test -count=1 -v -run 'TestTenMillionDistinct' ./pkg/codes 2>&1 | $(TESTFILTER) -v keep='distinct_test.go:'

## test-integration: the PostgreSQL store contract and the API's bad-input/fuzz seeds on PostgreSQL under -race,
## then the end-to-end tests (and every README command):
## real processes (broker, API, generators, shovel) on PostgreSQL with fault injection (bin/promocodes-faults),
## 1,000,000 codes in-process on SQLite, and the console in headless chromium (screenshots
## in bin/artifacts/console). The end-to-end packages run without -race: their
## processes are separate binaries, and SQLite under the race detector is ~30x slower.
INTEGRATION_PKGS := ./cmd/promocodes/... ./pkg/app/... ./console/...
test-integration: build build-faults
	PROMOCODES_TEST_POSTGRES_DSN='$(PROMOCODES_TEST_POSTGRES_DSN)' $(GO) test -race -count=1 -skip 'Adversarial' -v ./pkg/store/... ./api/... 2>&1 | $(TESTFILTER)
	@# Redemption over HTTP at full size (10,000 attempts on 1,000 codes) on SQLite and PostgreSQL:
	PROMOCODES_TEST_POSTGRES_DSN='$(PROMOCODES_TEST_POSTGRES_DSN)' $(GO) test -count=1 -skip 'Adversarial' -v ./redemption/... 2>&1 | \
		$(TESTFILTER) -v keep='concurrency_test.go:'
	PROMOCODES_TEST_POSTGRES_DSN='$(PROMOCODES_TEST_POSTGRES_DSN)' PROMOCODES_TEST_BINARY=$(CURDIR)/$(BIN) \
		PROMOCODES_TEST_FAULT_BINARY=$(CURDIR)/$(FAULT_BIN) \
		$(GO) test -count=1 -tags integration -timeout 20m -skip 'Adversarial' -v $(INTEGRATION_PKGS) 2>&1 | \
		$(TESTFILTER) -v keep='(e2e|faults|hardening|dev_integration|readme|browser)_test.go:'  # keep the figures the end-to-end tests log
	$(MAKE) --no-print-directory test-adversarial

## test-adversarial: the standing adversarial suite: every Test*Adversarial* test in the module, on SQLite
## and PostgreSQL (real processes where the case needs them), one line per case: "adversarial: <case> [db]: <outcome>".
test-adversarial: build
	PROMOCODES_TEST_POSTGRES_DSN='$(PROMOCODES_TEST_POSTGRES_DSN)' PROMOCODES_TEST_BINARY=$(CURDIR)/$(BIN) \
		$(GO) test -count=1 -tags integration -timeout 25m -run 'Adversarial' -v ./... 2>&1 | \
		$(TESTFILTER) -v keep='adversarial: '

## bench: code-engine speed on one core, the store's chunk commit, then end-to-end generation on
## PostgreSQL next to the binary-COPY ceilings measured in the same run (curve, tail, medians of
## BENCH_RUNS runs), then SQLite in process next to SQLite's own bulk load. Sizes and shapes:
##   make bench BENCH_CODES=10000000 BENCH_RUNS=3 [BENCH_PROCS=1 BENCH_WORKERS=2 BENCH_OUT=docs/perf/10m]
## (see BenchmarkGenerationVsCopyCeiling for every knob). BENCH_SKIP_MICRO=1 skips the first two.
BENCH_CODES ?= 1000000
BENCH_RUNS ?= 3
export BENCH_CODES BENCH_RUNS BENCH_PROCS BENCH_WORKERS BENCH_CHUNK BENCH_BATCH BENCH_CEILINGS BENCH_WINDOWS BENCH_OUT
bench: build
	@if [ -z "$(BENCH_SKIP_MICRO)" ]; then \
		$(GO) test -run '^$$' -bench . -benchmem -cpu 1 ./pkg/codes && \
		PROMOCODES_TEST_POSTGRES_DSN='$(PROMOCODES_TEST_POSTGRES_DSN)' $(GO) test -run '^$$' -bench . -benchtime 3x ./pkg/store/postgres; fi
	PROMOCODES_TEST_POSTGRES_DSN='$(PROMOCODES_TEST_POSTGRES_DSN)' PROMOCODES_TEST_BINARY=$(CURDIR)/$(BIN) \
		$(GO) test -tags integration -run '^$$' -bench GenerationVsCopyCeiling -benchtime 1x -timeout 4h ./cmd/promocodes
	$(GO) test -tags integration -run '^$$' -bench SQLiteVsBulkLoad -benchtime 1x -timeout 4h ./pkg/app

## bench-redeem: redemption on PostgreSQL against its floor, in one run on the same tables: pgbench runs the
## floor statement (a redemption's five writes in one statement) at 64 clients on random codes and on one
## code row; then 64 HTTP clients against the API process on a 1,000,000-code single-use promotion (and the
## same store.Redeem without HTTP), 64 HTTP clients on one hot vanity code, and a burst of 10,000 requests in
## flight on 1,000 codes; each figure with its ratio to the floor and the load average. Needs pgbench.
BENCH_REDEEM_SECONDS ?= 20
bench-redeem:
	PROMOCODES_TEST_POSTGRES_DSN='$(PROMOCODES_TEST_POSTGRES_DSN)' BENCH_REDEEM_SECONDS=$(BENCH_REDEEM_SECONDS) \
		$(GO) test -run '^$$' -bench 'BenchmarkRedeem$$' -benchtime 1x -timeout 30m ./redemption/

## bench-redeem-sqlite: redemption on SQLite (make run's default store) against SQLite's own floor, in one run on
## one database file with the store's pragmas: the floor's five writes on 64 goroutines, one write transaction
## each and grouped (redemptions that arrive during a commit share the next), on random codes and on one row;
## the grouped floor once more with a spinner process beside it (one core busy at nice 19: what a busy second
## core costs the one writer); then the same store.Redeem without HTTP, 64 HTTP clients against the API
## process on single-use codes (spread) and on one hot vanity code; each figure with its ratio to the grouped
## floor, p99 and the load average. Needs no PostgreSQL.
BENCH_REDEEM_SQLITE_SECONDS ?= 10
bench-redeem-sqlite:
	BENCH_REDEEM_SECONDS=$(BENCH_REDEEM_SQLITE_SECONDS) \
		$(GO) test -run '^$$' -bench BenchmarkRedeemSQLite -benchtime 1x -timeout 30m ./redemption/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 30s ./pkg/codes

## up/down: the production-like stack (Apache Kafka, SQL Server, API, 2 generators, shovel) — needs a Docker engine
up:
	docker compose up -d --build
down:
	docker compose down -v

clean:
	rm -rf bin data

## vendor-web: refresh the browser libraries embedded in the binary from npm (pinned versions; their
## licence files come along): Swagger UI for /docs (api/docsui), uPlot for the console's charts
## (console/static/vendor/uplot)
SWAGGER_UI_VERSION := 5.36.0
UPLOT_VERSION := 1.6.32
vendor-web:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cd "$$tmp" && \
	npm pack --silent swagger-ui-dist@$(SWAGGER_UI_VERSION) uplot@$(UPLOT_VERSION) >/dev/null && \
	tar xzf swagger-ui-dist-$(SWAGGER_UI_VERSION).tgz && \
	cp package/swagger-ui-bundle.js package/swagger-ui-bundle.js.LICENSE.txt package/swagger-ui.css \
	   package/LICENSE package/NOTICE $(CURDIR)/api/docsui/ && rm -rf package && \
	tar xzf uplot-$(UPLOT_VERSION).tgz && mkdir -p $(CURDIR)/console/static/vendor/uplot && \
	cp package/dist/uPlot.iife.min.js package/dist/uPlot.min.css package/LICENSE \
	   $(CURDIR)/console/static/vendor/uplot/ && \
	echo "vendored swagger-ui-dist $(SWAGGER_UI_VERSION) and uplot $(UPLOT_VERSION)"
