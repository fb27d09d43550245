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
	@# go.mod must be as "go mod tidy" leaves it. -e lets tidy pass over the
	@# tests of dependencies, which "go mod download" does not fetch, so the
	@# check needs only the module cache; go.sum is then checked for missing
	@# lines only (the lines of those tests' modules look stale offline).
	@diff=$$($(GO) mod tidy -e -diff 2>/dev/null); \
	if printf '%s\n' "$$diff" | grep -q -e '^diff current/go.mod' -e '^+[^+]'; then \
		printf '%s\n' "$$diff"; echo "go.mod or go.sum is not tidy: run go mod tidy"; exit 1; \
	fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

bench:
	$(GO) run ./cmd/peernet-bench

fmt:
	gofmt -w $$(git ls-files '*.go')
