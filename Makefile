# Saru build, test and tooling. `make test` is what CI runs (see .ci/run).
GO       ?= go
GOBIN    := $(shell $(GO) env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)

BUF_VERSION             := v1.75.0
PROTOC_GEN_GO_VERSION   := v1.36.10
PROTOC_GEN_GRPC_VERSION := v1.5.1
GRPCURL_VERSION         := v1.9.3

# Benchmarks: one pass each is enough for ratio metrics measured in the same run.
BENCHTIME ?= 1x

.PHONY: all build test unit bench proto lint tools deps lab clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -o bin/ ./cmd/...

# tools installs the pinned code generators and grpcurl into GOPATH/bin.
tools:
	$(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GRPC_VERSION)
	$(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

# deps installs what the tests need and this machine lacks: the Debian
# packages (apt-get, as root) and the pinned Go tools. It does nothing when
# all are present, so `make test` can run it every time.
TEST_PACKAGES := nftables iproute2 kmod iputils-ping conntrack socat qemu-system-x86 busybox-static cpio xz-utils ipvsadm

# apt-missing installs those of the Debian packages in $(1) that are missing.
apt-missing = missing=""; for p in $(1); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "== installing$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; fi

deps:
	@$(call apt-missing,$(TEST_PACKAGES))
	@$(GOBIN)/buf --version 2>/dev/null | grep -qx '$(BUF_VERSION:v%=%)' && \
	  test -x $(GOBIN)/protoc-gen-go && test -x $(GOBIN)/protoc-gen-go-grpc && test -x $(GOBIN)/grpcurl || \
	  { echo "== installing the pinned Go tools"; $(MAKE) --no-print-directory tools; }

# proto regenerates the Go code and the commented descriptor set that the
# gRPC server embeds (so `grpcurl describe` shows the .proto comments).
proto:
	buf generate
	$(GO) generate ./proto/...

# lint: formatting, vet, buf lint, and generated code in step with the .proto files.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	buf lint
	$(MAKE) --no-print-directory proto
	@git diff --exit-code -- proto || { echo "buf generate changed proto/: commit the generated code"; exit 1; }

# test: everything CI runs: lint, unit and property tests, host-namespace
# integration tests (root) and kernel-lab tests (QEMU). It installs what
# is missing first (deps).
# The end-to-end scenarios (deploy/lab) run last and alone: they boot a
# director mesh in the emulated kernel lab, where a starved guest makes
# memberlist see false deaths.
test: deps
	$(MAKE) --no-print-directory lint
	$(GO) test -count=1 -timeout 50m $$($(GO) list ./... | grep -v '/deploy/lab$$')
	$(GO) test -count=1 -timeout 30m ./deploy/lab/

# unit: the fast tests only (no root, no QEMU).
unit:
	$(GO) test -count=1 -short ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 60m ./...

# lab: the guided tour of a live director mesh (needs root). It installs the
# Debian packages and grpcurl it needs when they are missing, builds the
# static binaries and runs sarulab, which boots the QEMU kernel lab when this
# kernel has no IPVS. LAB_FLAGS passes options, e.g. LAB_FLAGS="--mode nat".
LAB_PACKAGES := nftables iproute2 kmod iputils-ping qemu-system-x86 busybox-static cpio ipvsadm
LAB_FLAGS    ?=

lab: build
	@$(call apt-missing,$(LAB_PACKAGES))
	@test -x $(GOBIN)/grpcurl || $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)
	bin/sarulab --grpcurl $(GOBIN)/grpcurl $(LAB_FLAGS)

clean:
	rm -rf bin build
