# cellar: `make run` starts the proxy in front of a bundled demo origin,
# `make test` runs vet and the race-enabled tests. Only Go is required;
# every dependency comes through go.mod.

GO      ?= go
BIN     := bin/cellar
LISTEN  ?= 127.0.0.1:8080
ADMIN   ?= 127.0.0.1:8081
ORIGIN  ?=
ARGS    ?=

.PHONY: all build run test vet bench bench-peers fmt clean soak soak-memory stall

all: build

build:
	$(GO) build -o $(BIN) ./cmd/cellar

# run: cellar on its embedded defaults. With no ORIGIN it serves the demo
# origin; set ORIGIN=http://host:port to put it in front of your own.
run: build
	@echo
	@echo "cellar is starting on http://$(LISTEN) (admin on http://$(ADMIN)). Try, in another terminal:"
	@echo "  curl -si http://$(LISTEN)/page/1 | grep -i -e '^HTTP' -e cache-status -e '^age'   # a miss: ~300 ms"
	@echo "  curl -si http://$(LISTEN)/page/1 | grep -i -e '^HTTP' -e cache-status -e '^age'   # a hit: from memory"
	@echo "  curl -s  http://$(ADMIN)/healthz"
	@echo "Stop it with Ctrl-C."
	@echo
	./$(BIN) serve -listen $(LISTEN) -admin $(ADMIN) $(if $(ORIGIN),-origin $(ORIGIN)) $(ARGS)

vet:
	$(GO) vet ./...

# The allocation counts of the hit path (its sync.Pool allocates at random
# under -race) and the poller's wake-up order (the race detector's scheduler
# runs woken goroutines in a random order) skip under -race, so they run
# without it too.
test: vet
	$(GO) test -race -timeout 30m ./...
	$(GO) test -count=1 -run 'Allocations|WakeInOrder' ./proxy/ ./cmd/cellar/ ./internal/poller/

# bench: the proxy's hit-path benchmarks against a bare net/http server.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./proxy/

# bench-peers: cellar's hits against Varnish and nginx under wrk, each
# server pinned to CPU 0 and wrk to CPU 1 (bench/peers-hits.sh; installs
# varnish, nginx-light and wrk from Debian when absent). Not part of test.
bench-peers:
	bench/peers-hits.sh

# soak: a bounded soak of the built binary (not part of test): 500
# connections of mixed hits, misses, uncacheable requests and purges for
# SOAK_DURATION, every body checked; RSS, goroutines and descriptors
# before, at the peak and after.
SOAK_DURATION ?= 60s
soak: build
	$(GO) run ./internal/soak -bin $(BIN) -conns 500 -duration $(SOAK_DURATION)

# soak-memory: the built binary's peak resident memory against issue 14's
# bounds, each on a fresh process at its defaults (access log on):
# 1000 x 100 KiB filled with -memory 256MiB (peak <= 1.25 x 97.7 MiB +
# 64 MiB), then SOAK_DURATION of hits, misses and compressible bodies as
# br/gzip/zstd/identity, 1 KiB-1 MiB, with -memory 64MiB (peak <= 256 MiB).
# Every body is checked; exits 1 over a bound. Not part of test.
soak-memory: build
	$(GO) run ./internal/soak -bin $(BIN) -mode memory -conns 32 -duration $(SOAK_DURATION)

fmt:
	gofmt -w .

clean:
	rm -rf bin

# stall: 1,500 loopback connections each send ~1 MiB of header fields to the
# built binary and stall; prints cellar's RSS and descriptors before and at
# the peak (internal/stall; not part of test).
stall: build
	$(GO) run ./internal/stall -bin $(BIN)
