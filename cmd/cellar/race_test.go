//go:build race

package main

// raceEnabled: the tests run with -race, so buildCellar builds the binary
// with it too, reusing the race-built packages the test binary needed.
const raceEnabled = true
