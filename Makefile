# The README's two set-up commands are `make demo` and `make test`.
GO ?= go

.PHONY: demo test lint bench fmt

# Two peernet-host daemons with plugins, driven through the CLI; see
# examples/demo. Binaries, configurations and logs go to .demo/.
demo:
	GO="$(GO)" $(GO) run ./examples/demo

# What CI runs (.ci/run): formatting, go.mod tidiness, vet, staticcheck,
# then every test with the race detector. Every tool is pinned in go.mod
# (staticcheck as a "tool" requirement), so after "go mod download" this
# needs nothing beyond the module cache.
test: lint
	$(GO) test -race -count=1 ./...

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod or go.sum is not tidy: run go mod tidy"; exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

bench:
	$(GO) run ./cmd/peernet-bench

fmt:
	gofmt -w $$(git ls-files '*.go')
