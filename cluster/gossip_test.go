package cluster

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/internal/leaktest"
	"github.com/cellar-cache/cellar/internal/proxytest"
)

// waitBound bounds every wait for the gossip to converge: generous, for a
// loaded machine; the waits end as soon as what they wait for is seen.
const waitBound = 60 * time.Second

// eventually polls cond until it holds or waitBound passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitBound); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", waitBound, what)
		}
	}
}

// startNode starts a gossiping node named self on a free loopback port,
// joining join (gossip addresses), closed at the end of the test.
func startNode(t *testing.T, self string, logs *proxytest.SyncBuffer, join ...string) *Cluster {
	t.Helper()
	var out = logs
	if out == nil {
		out = &proxytest.SyncBuffer{}
	}
	c, err := New(Config{Self: self, Gossip: &GossipConfig{Bind: "127.0.0.1:0", Join: join},
		Logger: slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// live returns the URLs of the members c counts as live.
func live(c *Cluster) []string {
	var urls []string
	for _, m := range c.Members(time.Now()) {
		urls = append(urls, m.URL)
	}
	slices.Sort(urls)
	return urls
}

// converge waits until every node in nodes sees exactly want as live.
func converge(t *testing.T, nodes []*Cluster, want []string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	for i, c := range nodes {
		eventually(t, fmt.Sprintf("node %d sees %v (it sees %v)", i, want, live(c)), func() bool { return slices.Equal(live(c), want) })
	}
}

// owners maps each key to its owner as c sees it.
func owners(c *Cluster, ks []string) map[string]string {
	now := time.Now()
	m := make(map[string]string, len(ks))
	for _, k := range ks {
		m[k] = c.Owner(k, now).URL
	}
	return m
}

// TestGossipJoinAndLeaveMoveOneNth runs three nodes with real memberlist
// over loopback, then a fourth that joins and later leaves cleanly: every
// node agrees on each key's owner, the join moves about a quarter of the
// keys (only to the new member), and once it has left it owns nothing and
// every key is back with its former owner.
func TestGossipJoinAndLeaveMoveOneNth(t *testing.T) {
	leaktest.Check(t)
	urls := []string{"http://127.0.0.1:18080", "http://127.0.0.1:18090", "http://127.0.0.1:18100", "http://127.0.0.1:18110"}
	a := startNode(t, urls[0], nil)
	b := startNode(t, urls[1], nil, a.GossipAddr())
	c := startNode(t, urls[2], nil, a.GossipAddr())
	three := []*Cluster{a, b, c}
	converge(t, three, urls[:3])

	ks := keys(10000)
	before := owners(a, ks)
	for i, n := range three[1:] {
		if o := owners(n, ks); !maps(o, before) {
			t.Fatalf("node %d disagrees with node 0 on owners", i+1)
		}
	}

	d := startNode(t, urls[3], nil, c.GossipAddr())
	four := append(three[:3:3], d)
	converge(t, four, urls)
	after := owners(a, ks)
	moved := 0
	for _, k := range ks {
		if after[k] != before[k] {
			moved++
			if after[k] != urls[3] {
				t.Fatalf("key %s moved from %s to %s, not to the new member", k, before[k], after[k])
			}
		}
	}
	t.Logf("gossip join 3 -> 4: %d of %d keys moved (%.1f%%; ideal 25%%)", moved, len(ks), 100*float64(moved)/float64(len(ks)))
	if moved < 2200 || moved > 2800 {
		t.Errorf("%d of %d keys moved on a join, want about %d", moved, len(ks), len(ks)/4)
	}
	for i, n := range four[1:] {
		if o := owners(n, ks); !maps(o, after) {
			t.Fatalf("node %d disagrees with node 0 on owners after the join", i+1)
		}
	}

	if err := d.Close(); err != nil {
		t.Fatalf("leave: %v", err)
	}
	converge(t, three, urls[:3])
	if again := owners(b, ks); !maps(again, before) {
		t.Error("after the fourth member left, the owners are not those before it joined")
	}
	for _, n := range three {
		if n.Changes() < 2 {
			t.Errorf("%s counted %d membership changes, want at least the join and the leave", n.Self(), n.Changes())
		}
	}
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestGossipSilentMemberLeavesRing stops a member's memberlist without a
// leave, as a crash does: the others declare it dead by themselves (after
// suspecting it) and its keys go to the remaining members. Its log lines
// reach the process log at their levels.
func TestGossipSilentMemberLeavesRing(t *testing.T) {
	leaktest.Check(t)
	logs := &proxytest.SyncBuffer{}
	urls := []string{"http://127.0.0.1:28080", "http://127.0.0.1:28090", "http://127.0.0.1:28100"}
	a := startNode(t, urls[0], logs)
	b := startNode(t, urls[1], nil, a.GossipAddr())
	c := startNode(t, urls[2], nil, a.GossipAddr())
	converge(t, []*Cluster{a, b, c}, urls)

	// A crash: no leave message, no more answers to probes.
	c.gossip.mu.Lock()
	ml := c.gossip.ml
	c.gossip.ml = nil // Close must not leave after this
	c.gossip.mu.Unlock()
	if err := ml.Shutdown(); err != nil {
		t.Fatal(err)
	}
	converge(t, []*Cluster{a, b}, urls[:2])
	for k, o := range owners(a, keys(3000)) {
		if o == urls[2] {
			t.Fatalf("key %s is still owned by the crashed member", k)
		}
	}
	out := logs.String()
	for _, want := range []string{"level=DEBUG", "component=memberlist", "cluster: members changed"} {
		if !strings.Contains(out, want) {
			t.Errorf("process log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "[DEBUG]") || strings.Contains(out, "level=ERROR") {
		t.Errorf("memberlist's raw levels reached the log, or a member's failure was logged as an error:\n%s", out)
	}
}

// TestGossipFirstNodeJoinsLater starts a node whose join address has
// nobody yet: it serves alone, then joins once the other is there.
func TestGossipFirstNodeJoinsLater(t *testing.T) {
	leaktest.Check(t)
	urls := []string{"http://127.0.0.1:38080", "http://127.0.0.1:38090"}
	// Learn a free gossip port, then let b wait for a to appear on it.
	probe := startNode(t, "http://127.0.0.1:38070", nil)
	addr := probe.GossipAddr()
	if err := probe.Close(); err != nil {
		t.Fatal(err)
	}
	b := startNode(t, urls[1], nil, addr)
	if got := live(b); !slices.Equal(got, urls[1:]) {
		t.Fatalf("b alone sees %v", got)
	}
	a, err := New(Config{Self: urls[0], Gossip: &GossipConfig{Bind: addr}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Skipf("the probed port was taken meanwhile: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	converge(t, []*Cluster{a, b}, urls)
}

func TestGossipConfigErrors(t *testing.T) {
	_, err := New(Config{Self: "http://a:1", Peers: []string{"http://b:1"},
		Gossip: &GossipConfig{Bind: "nope", Join: []string{"127.0.0.1", "h:99999"}}})
	if err == nil {
		t.Fatal("New accepted a bad gossip section")
	}
	for _, want := range []string{"cluster.peers and cluster.gossip", "cluster.gossip.bind", "cluster.gossip.join[0]", "cluster.gossip.join[1]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
