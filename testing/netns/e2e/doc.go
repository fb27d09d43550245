// Package e2e implements end-to-end tests of peernet-host: real node
// processes, each in its own network namespace (package testing/netns),
// configured by HCL files and driven through the command-line client, that
// find each other by mDNS, connect, answer calls, lose and regain their
// links and move to new addresses.
//
// The tests need root and iproute2 and skip without them. They build
// peernet-host and the echo plugin once per test binary. The package has
// no API; its tests are the product.
package e2e
