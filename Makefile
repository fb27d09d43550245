# The README's two set-up commands are `make demo` and `make test`.
GO ?= go
STATICCHECK = honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: demo test lint bench fmt

# Two peernet-host daemons with plugins, driven through the CLI; see
# examples/demo. Binaries, configurations and logs go to .demo/.
demo:
	GO="$(GO)" $(GO) run ./examples/demo

# What CI runs (.ci/run): formatting, vet, staticcheck, then every test
# with the race detector.
test: lint
	$(GO) test -race -count=1 ./...

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

bench:
	$(GO) run ./cmd/peernet-bench

fmt:
	gofmt -w $$(git ls-files '*.go')
