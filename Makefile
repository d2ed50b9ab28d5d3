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

.PHONY: all build test unit bench proto lint tools lab clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -o bin/ ./cmd/...

# tools installs the pinned code generators and grpcurl into GOPATH/bin.
tools:
	$(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GRPC_VERSION)
	$(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

proto:
	buf generate

# lint: formatting, vet, buf lint, and generated code in step with the .proto files.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	buf lint
	buf generate
	@git diff --exit-code -- proto || { echo "buf generate changed proto/: commit the generated code"; exit 1; }

# test: everything CI runs: lint, unit and property tests, host-namespace
# integration tests (root) and kernel-lab tests (QEMU).
test: lint
	$(GO) test -count=1 -timeout 75m ./...

# unit: the fast tests only (no root, no QEMU).
unit:
	$(GO) test -count=1 -short ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 60m ./...

lab: build
	@echo "make lab arrives with the end-to-end lab; see README.md" && exit 1

clean:
	rm -rf bin build
