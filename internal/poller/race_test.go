//go:build race

package poller

// The race detector's scheduler takes a woken goroutine's place at the
// front of the run queue at random: no order to test.
const raceEnabled = true
