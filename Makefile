# The README's two set-up commands are `make demo` and `make test`.
GO ?= go

.PHONY: demo test bench fmt

# Two peernet-host daemons with plugins, driven through the CLI; see
# examples/demo. Binaries, configurations and logs go to .demo/.
demo:
	GO="$(GO)" $(GO) run ./examples/demo

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

fmt:
	gofmt -w $$(git ls-files '*.go')
