# The README's two set-up commands are `make demo` and `make test`; its
# Install section uses `make install`.
GO ?= go

.PHONY: demo test lint bench fmt install

# Two peernet-host daemons with plugins, driven through the CLI; see
# examples/demo. Binaries, configurations and logs go to .demo/.
demo:
	GO="$(GO)" $(GO) run ./examples/demo

# What CI runs (.ci/run): formatting, go.mod tidiness, vet, staticcheck,
# then every test with the race detector: go test -race -count=1 ./...,
# through testing/testprogress, which prints a line per package as it
# finishes, the output of failed tests, and what is still running when
# nothing has finished for a while. Every tool is pinned in go.mod
# (staticcheck as a "tool" requirement) or lives in this module, so after
# "go mod download" this needs nothing beyond the module cache.
test: lint
	GO="$(GO)" $(GO) run ./testing/testprogress -race -count=1 ./...

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

# peernet-host and the example plugins, built from this clone into
# $(go env GOBIN), or the bin directory of the first $(go env GOPATH) entry
# when GOBIN is unset. The plugins are named peernet-echo and peernet-kv:
# "go install ./plugins/echo" would name one echo and shadow the shell's.
install:
	@bin=$$($(GO) env GOBIN); bin=$${bin:-$$($(GO) env GOPATH | cut -d: -f1)/bin}; set -e; \
	$(GO) build -o "$$bin/peernet-host" ./cmd/peernet-host; \
	$(GO) build -o "$$bin/peernet-echo" ./plugins/echo; \
	$(GO) build -o "$$bin/peernet-kv" ./plugins/kv; \
	echo "installed peernet-host, peernet-echo and peernet-kv in $$bin"

bench:
	$(GO) run ./cmd/peernet-bench

fmt:
	gofmt -w $$(git ls-files '*.go')
