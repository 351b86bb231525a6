package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cellar-cache/cellar/cluster/purgestream"
	"github.com/cellar-cache/cellar/store"
)

// natsConfig is cluster.nats: the purge stream (cluster/purgestream) on
// an external NATS server (url) or on one this process runs (embedded).
type natsConfig struct {
	URL      string `yaml:"url"`
	Embedded bool   `yaml:"embedded"`
	Listen   string `yaml:"listen"`    // the embedded server's client address
	StoreDir string `yaml:"store_dir"` // the embedded server's JetStream files
	// Name is this node's name in the stream (its durable consumer);
	// default made from cluster.self.
	Name   string `yaml:"name"`
	Stream string `yaml:"stream"`
	MaxAge string `yaml:"max_age"`
	// CatchUpWait bounds how long a start waits for the catch-up before
	// it opens the proxy listeners.
	CatchUpWait string `yaml:"catch_up_wait"`
}

// natsSettings are cluster.nats checked; the zero value: no stream.
type natsSettings struct {
	url                    string // the external server; empty with embedded
	embedded               bool
	listen, storeDir, node string
	stream                 string
	maxAge, catchUpWait    time.Duration
}

func (n natsSettings) on() bool { return n.url != "" || n.embedded }

// natsDefaultCatchUpWait is how long a start waits, by default, for the
// purge stream's catch-up before it serves anyway (stored objects stay
// misses until the catch-up).
const natsDefaultCatchUpWait = 5 * time.Second

// settings checks cluster.nats; self is cluster.self (the node's name by
// default).
func (nc natsConfig) settings(p *problems, self string) natsSettings {
	if nc.URL == "" && !nc.Embedded {
		if nc != (natsConfig{}) {
			p.add("cluster.nats", "", "give url (an external NATS server) or embedded: true")
		}
		return natsSettings{}
	}
	n := natsSettings{url: nc.URL, embedded: nc.Embedded, storeDir: nc.StoreDir, stream: nc.Stream, catchUpWait: natsDefaultCatchUpWait}
	switch {
	case nc.URL != "" && nc.Embedded:
		p.add("cluster.nats.url", nc.URL, "give url or embedded: true, not both (the embedded server's nodes connect to its listen address)")
	case nc.URL != "":
		for _, u := range strings.Split(nc.URL, ",") {
			if !strings.HasPrefix(u, "nats://") && !strings.HasPrefix(u, "tls://") {
				p.add("cluster.nats.url", nc.URL, "want nats://host:port (or tls://), several separated by commas")
				break
			}
		}
	default:
		n.listen = "127.0.0.1:4222"
		if nc.Listen != "" {
			n.listen = p.hostPort("cluster.nats.listen", nc.Listen)
		}
	}
	if !nc.Embedded && (nc.Listen != "" || nc.StoreDir != "") {
		p.add("cluster.nats.listen", nc.Listen+nc.StoreDir, "listen and store_dir are the embedded server's: set embedded: true")
	}
	n.node = nc.Name
	if n.node == "" {
		n.node = purgestream.NodeName(self)
	}
	if n.node == "" {
		p.add("cluster.nats.name", "", "this node's name in the purge stream: set it, or cluster.self")
	} else if purgestream.NodeName(n.node) != n.node {
		p.add("cluster.nats.name", nc.Name, "want letters, digits, - and _ only")
	}
	p.duration("cluster.nats.max_age", nc.MaxAge, &n.maxAge)
	p.duration("cluster.nats.catch_up_wait", nc.CatchUpWait, &n.catchUpWait)
	return n
}

// purgeStream is the process's side of the purge stream: the embedded
// server when configured, the stream, and the store's hold until the
// catch-up. It lives as long as the process (cluster.nats changes at a
// restart).
type purgeStream struct {
	set    natsSettings
	server *purgestream.Server // nil with an external server
	stream *purgestream.Stream
	// release ends the store's hold (HoldStored); called once caught up.
	release func()
	wg      sync.WaitGroup // the goroutine that releases the hold
	cancel  context.CancelFunc
}

// startPurgeStream starts the purge stream of n (nil when n is off) and
// holds what st stored until the node has caught up. Events are applied
// through apply, which may be called before the first generation exists
// (it waits for it).
func startPurgeStream(n natsSettings, dataDir string, st *store.Store, log *slog.Logger, apply func(context.Context, []purgestream.Event) (int, error)) (*purgeStream, error) {
	if !n.on() {
		return nil, nil
	}
	ps := &purgeStream{set: n}
	url := n.url
	if n.embedded {
		dir := n.storeDir
		if dir == "" {
			dir = filepath.Join(dataDir, "nats")
		}
		srv, err := purgestream.StartServer(purgestream.ServerOptions{Listen: n.listen, StoreDir: dir, Name: n.node})
		if err != nil {
			return nil, fmt.Errorf("cluster.nats: %w", err)
		}
		ps.server, url = srv, srv.URL()
		log.Info("embedded NATS server started", "url", url, "store_dir", dir)
	}
	release := st.HoldStored()
	stream, err := purgestream.New(purgestream.Options{
		URL: url, Node: n.node, StateFile: filepath.Join(dataDir, "purgestream.json"),
		Stream: n.stream, MaxAge: n.maxAge, Apply: apply, Logger: log,
	})
	if err != nil {
		release()
		if ps.server != nil {
			ps.server.Close()
		}
		return nil, fmt.Errorf("cluster.nats: %w", err)
	}
	ps.stream, ps.release = stream, release
	ctx, cancel := context.WithCancel(context.Background())
	ps.cancel = cancel
	ps.wg.Go(func() {
		select {
		case <-stream.CaughtUp():
			release()
		case <-ctx.Done():
		}
	})
	log.Info("purges go through the purge stream", "nats", url, "node", n.node)
	return ps, nil
}

// waitCatchUp waits, within the configured bound, for the catch-up; once
// caught up, the store's hold has ended when it returns.
func (ps *purgeStream) waitCatchUp(ctx context.Context, log *slog.Logger) {
	t := time.NewTimer(ps.set.catchUpWait)
	defer t.Stop()
	select {
	case <-ps.stream.CaughtUp():
		ps.release() // also done in the background; here, before the listeners open
	case <-ctx.Done():
	case <-t.C:
		st := ps.stream.Status()
		log.Warn("purge stream: not caught up; serving anyway: objects stored before the start are misses (fetched again from the origin) until it is",
			"waited", ps.set.catchUpWait, "connected", st.Connected, "applied", st.Applied, "stream_last", st.Last, "err", st.Error)
	}
}

// publisher is the stream purges are published to; nil without one.
func (ps *purgeStream) publisher() *purgestream.Stream {
	if ps == nil {
		return nil
	}
	return ps.stream
}

// running are the settings the stream was started with; zero without one.
func (ps *purgeStream) running() natsSettings {
	if ps == nil {
		return natsSettings{}
	}
	return ps.set
}

// close stops the stream, then the embedded server.
func (ps *purgeStream) close() {
	ps.cancel()
	ps.wg.Wait()
	ps.stream.Close()
	if ps.server != nil {
		ps.server.Close()
	}
}

// collectors are the stream's gauges: lag, applied sequence, caught up,
// connected.
func (ps *purgeStream) collectors() []prometheus.Collector {
	gauge := func(name, help string, f func(purgestream.Status) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "cellar", Name: name, Help: help},
			func() float64 { return f(ps.stream.Status()) })
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	return []prometheus.Collector{
		gauge("purge_stream_lag", "Purge events in the stream that this node has not applied yet (the stream's last sequence minus the applied one).",
			func(s purgestream.Status) float64 { return float64(s.Lag) }),
		gauge("purge_stream_applied_sequence", "The last purge stream sequence this node applied.",
			func(s purgestream.Status) float64 { return float64(s.Applied) }),
		gauge("purge_stream_caught_up", "1 once this node has applied the purges made while it was down (until then, objects it stored before its start are misses).",
			func(s purgestream.Status) float64 { return b(s.CaughtUp) }),
		gauge("purge_stream_connected", "1 while the connection to NATS is up.",
			func(s purgestream.Status) float64 { return b(s.Connected) }),
	}
}

// healthLine is /healthz's line about the stream.
func (ps *purgeStream) healthLine() string {
	st := ps.stream.Status()
	state := "caught up"
	if !st.CaughtUp {
		state = "catching up (stored objects are misses until done)"
	}
	conn := "connected"
	if !st.Connected {
		conn = "NATS unreachable"
	}
	line := fmt.Sprintf("purge stream: %s, %s, applied %d of %d, lag %d", state, conn, st.Applied, st.Last, st.Lag)
	if st.Error != "" {
		line += " (" + st.Error + ")"
	}
	return line
}
