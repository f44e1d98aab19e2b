# Berth: `make run` starts it, `make test` tests it (installing what the tests need).
GO        ?= go
BIN       := bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/berth-project/berth/internal/version.Version=$(VERSION)
DATA_DIR  ?= /var/lib/berth
RUN_DIR   ?= /run/berth

.PHONY: build run test test-unit test-e2e walkthrough deps bench fuzz clean

build:
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/berth ./cmd/berth
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/berth-runtime ./cmd/berth-runtime
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/berth-shim ./cmd/berth-shim

# deps installs what Berth and its tests need on a fresh Debian machine.
deps:
	@need=""; \
	busybox --list >/dev/null 2>&1 && ! ldd /bin/busybox >/dev/null 2>&1 || need="$$need busybox-static"; \
	command -v ps >/dev/null || need="$$need procps"; \
	command -v ip >/dev/null || need="$$need iproute2"; \
	command -v nft >/dev/null || need="$$need nftables"; \
	command -v gcc >/dev/null || need="$$need gcc libc6-dev"; \
	if [ -n "$$need" ]; then \
		echo "installing:$$need"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; \
	fi
	@python3 -c 'import docker' 2>/dev/null || echo "note: docker-py is not installed; its test will be skipped"

run: build
	@echo "Starting the Berth engine (data: $(DATA_DIR), sockets: $(RUN_DIR))."
	@echo "Point docker at it from another shell:"
	@echo "    export DOCKER_HOST=unix://$(RUN_DIR)/docker.sock"
	@echo "    docker version"
	@echo "Ctrl-C stops the engine; running containers keep running."
	$(BIN)/berth engine --data-dir $(DATA_DIR) --run-dir $(RUN_DIR)

test: deps build test-unit test-e2e

test-unit:
	$(GO) vet ./...
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /test/e2e)

test-e2e: build
	$(GO) test -count=1 -timeout 20m ./test/e2e/...

walkthrough: build
	bash ../shared/walkthrough/01-docker-containers.sh

bench: deps build
	BUILD=0 bash bench/run.sh

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzApply -fuzztime 30s ./internal/engine/snapshot
	$(GO) test -run '^$$' -fuzz FuzzParseReference -fuzztime 30s ./internal/engine/image
	$(GO) test -run '^$$' -fuzz FuzzDockerfile -fuzztime 30s ./internal/engine/build

clean:
	rm -rf $(BIN)
