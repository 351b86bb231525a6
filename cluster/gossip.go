package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Gossip timing. memberlist's LAN defaults probe one member a second and
// declare a silent member dead after a suspicion of 4·log10(N+1) probe
// intervals (about 2.4 s for three members); a member that leaves cleanly
// is gone at once.
const (
	// refreshEvery is how often the live members are read again from
	// memberlist besides its join, leave and update events: memberlist
	// sends no event when a member becomes suspect, and a suspect member
	// should leave the ring before it is declared dead.
	refreshEvery = 250 * time.Millisecond
	// rejoinEvery is how often a node that knows no other live member
	// tries its join addresses again.
	rejoinEvery = 5 * time.Second
	// leaveTimeout bounds how long Close waits for the leave message to
	// go out before it shuts memberlist down.
	leaveTimeout = 3 * time.Second
)

// gossip is the membership found by memberlist: it feeds the live members
// (alive in memberlist, with their proxy address in their metadata) to the
// Cluster's ring.
type gossip struct {
	c    *Cluster
	conf GossipConfig

	wake chan struct{} // memberlist's events ask for a refresh; buffered
	stop chan struct{} // closed by close
	done chan struct{} // closed when the loop has returned

	mu      sync.Mutex // protects ml, started, closed
	ml      *memberlist.Memberlist
	started bool // the loop runs (until close)
	closed  bool

	closeOnce sync.Once
	closeErr  error // the first close's result
}

func newGossip(c *Cluster, conf GossipConfig) *gossip {
	return &gossip{c: c, conf: conf, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// start binds memberlist, joins the configured members and starts the loop
// that keeps the ring current.
func (g *gossip) start() error {
	host, portStr, _ := net.SplitHostPort(g.conf.Bind) // checked by New
	port, _ := strconv.Atoi(portStr)
	mc := memberlist.DefaultLANConfig()
	mc.Name = g.c.self
	mc.BindAddr, mc.BindPort = host, port
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		mc.AdvertiseAddr, mc.AdvertisePort = host, port
	}
	mc.Delegate = metaDelegate(g.c.self)
	mc.Events = &events{wake: g.wake}
	mc.Logger = log.New(&logWriter{log: g.c.log}, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("cluster.gossip.bind %s: %w", g.conf.Bind, err)
	}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		ml.Shutdown()
		return errors.New("cluster: started after Close")
	}
	g.ml, g.started = ml, true
	g.mu.Unlock()
	g.join(ml)
	go g.loop(ml)
	return nil
}

// join tries the join addresses; reaching none is logged, not fatal.
func (g *gossip) join(ml *memberlist.Memberlist) {
	if len(g.conf.Join) == 0 {
		return
	}
	n, err := ml.Join(g.conf.Join)
	if err != nil && n == 0 {
		g.c.log.Warn("cluster: no gossip member reached yet; serving alone and trying again", "join", strings.Join(g.conf.Join, ","), "err", err)
		return
	}
	g.c.log.Debug("cluster: joined the gossip", "reached", n)
}

// loop keeps the ring current until close: on memberlist's events and
// every refreshEvery, and tries the join addresses again while alone.
func (g *gossip) loop(ml *memberlist.Memberlist) {
	defer close(g.done)
	tick := time.NewTicker(refreshEvery)
	defer tick.Stop()
	lastJoin := time.Now()
	for {
		select {
		case <-g.stop:
			return
		case <-g.wake:
		case <-tick.C:
		}
		alone := g.refresh(ml) == 1
		if alone && len(g.conf.Join) > 0 && time.Since(lastJoin) >= rejoinEvery {
			lastJoin = time.Now()
			g.join(ml)
		}
	}
}

// refresh gives the ring memberlist's alive members and returns how many
// there are.
func (g *gossip) refresh(ml *memberlist.Memberlist) int {
	var urls []string
	for _, n := range ml.Members() {
		if n.State != memberlist.StateAlive {
			continue // suspect: out of the ring until it is alive again
		}
		u, err := normalize(string(n.Meta))
		if err != nil {
			g.c.log.Debug("cluster: a gossip member without a proxy address is ignored", "member", n.Name, "meta", string(n.Meta))
			continue
		}
		urls = append(urls, u)
	}
	if g.c.setMembers(urls) {
		ms := g.c.Members(time.Now())
		names := make([]string, len(ms))
		for i, m := range ms {
			names[i] = m.URL
		}
		g.c.log.Info("cluster: members changed", "live", len(ms), "members", strings.Join(names, ","))
	}
	return len(urls)
}

// addr returns the bound gossip address, or "" before start.
func (g *gossip) addr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ml == nil {
		return ""
	}
	n := g.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// close leaves (so the others drop this node at once) and shuts memberlist
// down; the loop is stopped first.
func (g *gossip) close() error {
	g.closeOnce.Do(func() {
		g.mu.Lock()
		ml, started := g.ml, g.started
		g.closed = true
		g.mu.Unlock()
		close(g.stop)
		if !started {
			return
		}
		<-g.done
		if ml == nil {
			return // crashed (tests): memberlist is shut down already
		}
		leaveErr := ml.Leave(leaveTimeout)
		if leaveErr != nil {
			leaveErr = fmt.Errorf("cluster: leaving the gossip: %w", leaveErr)
		}
		g.closeErr = errors.Join(leaveErr, ml.Shutdown())
	})
	return g.closeErr
}

// metaDelegate gives memberlist this node's metadata: its proxy address,
// which the other members put in their rings.
type metaDelegate string

var _ memberlist.Delegate = metaDelegate("")

func (d metaDelegate) NodeMeta(limit int) []byte {
	if len(d) > limit {
		return nil // an address past memberlist's 512 bytes: the others ignore this node
	}
	return []byte(d)
}
func (metaDelegate) NotifyMsg([]byte)                           {}
func (metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (metaDelegate) LocalState(join bool) []byte                { return nil }
func (metaDelegate) MergeRemoteState(buf []byte, join bool)     {}

// events wakes the gossip loop on every membership event. memberlist calls
// it with its own locks held, so it only signals.
type events struct{ wake chan struct{} }

var _ memberlist.EventDelegate = (*events)(nil)

func (e *events) NotifyJoin(*memberlist.Node)   { e.poke() }
func (e *events) NotifyLeave(*memberlist.Node)  { e.poke() }
func (e *events) NotifyUpdate(*memberlist.Node) { e.poke() }
func (e *events) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// logWriter turns memberlist's log lines ("[WARN] memberlist: ...") into
// records of the process log. memberlist's [ERR] lines are failures to
// reach another member, which the membership itself handles: they are
// warnings here, not errors of this process.
type logWriter struct{ log *slog.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{"[DEBUG] ": slog.LevelDebug, "[INFO] ": slog.LevelInfo, "[WARN] ": slog.LevelWarn, "[ERR] ": slog.LevelWarn} {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			line, level = rest, l
			break
		}
	}
	w.log.Log(context.Background(), level, strings.TrimPrefix(line, "memberlist: "), "component", "memberlist")
	return len(p), nil
}

var _ io.Writer = (*logWriter)(nil)
