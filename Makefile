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
	# berth-runtime is also every container's init: linked statically (as runc is), its
	# exec skips the dynamic loader on each start.
	CGO_ENABLED=1 $(GO) build -trimpath -tags 'netgo osusergo' -ldflags '$(LDFLAGS) -extldflags -static' -o $(BIN)/berth-runtime ./cmd/berth-runtime
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/berth-shim ./cmd/berth-shim

# deps installs what Berth and its tests need on a fresh Debian machine.
deps:
	@need=""; \
	busybox --list >/dev/null 2>&1 && ! ldd /bin/busybox >/dev/null 2>&1 || need="$$need busybox-static"; \
	command -v ps >/dev/null || need="$$need procps"; \
	command -v ip >/dev/null || need="$$need iproute2"; \
	command -v nft >/dev/null || need="$$need nftables"; \
	command -v gcc >/dev/null || need="$$need gcc libc6-dev"; \
	command -v etcd >/dev/null || need="$$need etcd-server"; \
	command -v containerd >/dev/null || need="$$need containerd"; \
	[ -x /usr/lib/cni/bridge ] || need="$$need containernetworking-plugins"; \
	if [ -n "$$need" ]; then \
		echo "installing:$$need"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; \
	fi
	@python3 -c 'import docker' 2>/dev/null || echo "note: docker-py is not installed; its test will be skipped"

run: build
	@echo "Starting Berth: a one-node cluster (API server, etcd, scheduler, controllers, kubelet) and its"
	@echo "container engine (data: $(DATA_DIR), sockets: $(RUN_DIR))."
	@echo "From another shell:"
	@echo "    export DOCKER_HOST=unix://$(RUN_DIR)/docker.sock"
	@echo "    export KUBECONFIG=$(DATA_DIR)/admin.kubeconfig"
	@echo "    docker version; kubectl get nodes"
	@echo "Ctrl-C stops it; running containers and pods keep running."
	@$(BIN)/berth server --data-dir $(DATA_DIR) --run-dir $(RUN_DIR) --api-port 6443 \
		--kubeconfig $(DATA_DIR)/admin.kubeconfig

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
	$(GO) test -run '^$$' -fuzz FuzzDecodeAndPatch -fuzztime 30s ./internal/apiserver
	$(GO) test -run '^$$' -fuzz '^FuzzApply$$' -fuzztime 30s ./internal/apiserver
	$(GO) test -run '^$$' -fuzz FuzzCustomResource -fuzztime 30s ./internal/apiserver
	$(GO) test -run '^$$' -fuzz '^FuzzParseManifest$$' -fuzztime 20s ./internal/registry
	$(GO) test -run '^$$' -fuzz '^FuzzParseRoute$$' -fuzztime 20s ./internal/registry
	$(GO) test -run '^$$' -fuzz '^FuzzParseReference$$' -fuzztime 20s ./internal/registry
	$(GO) test -run '^$$' -fuzz '^FuzzTokenVerify$$' -fuzztime 20s ./internal/registry

clean:
	rm -rf $(BIN)
