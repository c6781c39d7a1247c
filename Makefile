# Gantry's build. ./dev installs what these targets need, then runs them.
GO ?= go
BIN := bin
CMDS := $(notdir $(wildcard cmd/*))
SOAK_TRIALS ?= 1000

.PHONY: help build test vet fmt-check soak bench docs run clean

help:
	@echo "make build   - build every command into $(BIN)/"
	@echo "make test    - vet, format check, every test (with 200 kill -9 crash trials and the fuzz seed corpora)"
	@echo "make soak    - the kill -9 crash test with $(SOAK_TRIALS) trials"
	@echo "make bench   - API benchmark against an empty handler on the same socket"
	@echo "make docs    - regenerate docs/settings.md from the model"
	@echo "make run     - build and start a local Gantry node (settings API on run/api.sock)"

build:
	$(GO) build -trimpath -o $(BIN)/ ./cmd/...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: vet fmt-check
	$(GO) test -count=1 -timeout 30m ./...

soak:
	$(GO) test -count=1 -run TestCrashConsistency -v -timeout 60m ./apiserver -crash.trials=$(SOAK_TRIALS)

bench:
	$(GO) run ./cmd/gantry-bench

docs:
	$(GO) test ./model -run TestSettingsReferenceUpToDate -update

run: build
	scripts/run-local.sh

clean:
	rm -rf $(BIN) run
