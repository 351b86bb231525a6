// Package bench measures hit ratios: it reads cache traces and generates
// Zipf workloads, replays them through reference policies (exact LRU,
// Belady's optimum), through ristretto configured as cellar's memory tier
// and through cellar's real store, and replays workloads over HTTP against
// a running proxy (`cellar bench sim` and `cellar bench http`, see RunSim
// and RunHTTP). Hits are reused responses in the sense of RFC 9111 §4; over
// HTTP they are read from the Cache-Status field of RFC 9211 §2.
//
// README.md in this directory has the measured figures and how to compare
// cellar with other proxies.
package bench
