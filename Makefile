# The README's two set-up commands are `make demo` and `make test`.
GO ?= go

.PHONY: demo test bench fmt

demo:
	$(GO) run ./examples/embed

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

fmt:
	gofmt -w $$(git ls-files '*.go')
