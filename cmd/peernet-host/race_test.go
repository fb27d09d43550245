//go:build race

package main

// raceEnabled is set when the tests run with -race, so the end-to-end test
// builds the peernet-host binary it runs with the race detector too.
const raceEnabled = true
