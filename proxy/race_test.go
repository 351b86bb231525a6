//go:build race

package proxy

// raceEnabled: the tests run with -race, whose sync.Pool drops items at
// random (so allocation counts are not the code's own).
const raceEnabled = true
