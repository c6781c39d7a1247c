# Gantry's build. ./dev installs what these targets need, then runs them.
GO ?= go
BIN := bin
CMDS := $(notdir $(wildcard cmd/*))
SOAK_TRIALS ?= 1000

.PHONY: help build image image-k8s k8s-tools test vet fmt-check soak bench docs run run-image run-local clean

help:
	@echo "make build   - build every command into $(BIN)/"
	@echo "make test    - vet, format check, every test (with 200 kill -9 crash trials and the fuzz seed corpora)"
	@echo "make soak    - the kill -9 crash test with $(SOAK_TRIALS) trials"
	@echo "make bench   - API benchmark against an empty handler on the same socket"
	@echo "make docs    - regenerate docs/settings.md from the model"
	@echo "make image   - build the metal-dev image into build/metal-dev"
	@echo "make k8s-tools - build kubelet, containerd 2, etcd and the Kubernetes control plane from tools/ into the cache"
	@echo "make image-k8s - build the metal-k8s-1.37 image into build/metal-k8s-1.37"
	@echo "make run     - build metal-dev and the admin and control images, and boot it under QEMU (API on run/metal-dev/api.sock, update repository run/metal-dev/repo, registry run/metal-dev/registry)"
	@echo "make run-local - start an unprivileged local node without a VM (API on run/api.sock)"

build:
	$(GO) build -trimpath -o $(BIN)/ ./cmd/...

# Tests that boot a VM are behind the vm build tag, so that a plain
# `go test ./...` stays quick; make test (and so CI) always enables it.
vet:
	$(GO) vet ./...
	$(GO) vet -tags vm ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

image:
	$(GO) run ./cmd/gantry build -q

# The Kubernetes binaries of the tools module (tools/k8s), built once into the
# user cache (about 15 minutes cold on 2 cores, then reused).
k8s-tools:
	$(GO) run ./cmd/gantry k8s-tools

# The Kubernetes variant's image (its kubelet and containerd come from
# k8s-tools).
image-k8s: k8s-tools
	$(GO) run ./cmd/gantry build -q --variant metal-k8s-1.37

# The images are built first so that the QEMU end-to-end tests boot them, and
# the Kubernetes binaries so that no test builds them under its timeout.
test: vet fmt-check k8s-tools image image-k8s
	$(GO) test -tags vm -count=1 -timeout 40m ./...

soak:
	$(GO) test -count=1 -run TestCrashConsistency -v -timeout 60m ./internal/settings/apiserver -crash.trials=$(SOAK_TRIALS)

bench:
	$(GO) run ./cmd/gantry-bench

docs:
	$(GO) test ./pkg/model -run TestSettingsReferenceUpToDate -update

# The node's update repository (a development one, made once and kept in run/)
# comes first, so that the image trusts it; gantry run then publishes the image
# to it and serves it to the node. The admin and control images go to
# build/containers, which gantry run publishes to its local registry.
RUN_REPO := run/metal-dev/repo

run-image: build
	$(BIN)/gantry repo init --dev --repo $(RUN_REPO)
	$(BIN)/gantry build -q --root-json $(RUN_REPO)/metadata/root.json
	$(BIN)/gantry container build -q admin
	$(BIN)/gantry container build -q control
	$(BIN)/gantry container build -q disks

run: run-image
	$(BIN)/gantry run --update-repo $(RUN_REPO)

run-local: build
	scripts/run-local.sh

clean:
	rm -rf $(BIN) run build
