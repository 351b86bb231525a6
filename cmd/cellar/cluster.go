package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cellar-cache/cellar/cluster"
)

// A static cluster (cluster.peers) is data: every generation builds its
// own from the config, so a reload may change the members. A gossip
// membership (cluster.gossip) binds a port and is a member of the others'
// rings: it lives as long as the process (daemon.cluster), every
// generation uses it, and a change of the cluster section takes effect
// at restart.

// newGossipCluster returns the process's gossip membership for s (not yet
// started), or nil when s has no cluster.gossip.
func newGossipCluster(s settings, log *slog.Logger) (*cluster.Cluster, error) {
	if s.cluster == nil || s.cluster.Gossip == nil {
		return nil, nil
	}
	cc := *s.cluster
	cc.Logger = log
	cl, err := cluster.New(cc)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return cl, nil
}

// reloadCluster decides which cluster the generation built from s uses.
// It returns the setting to report as needing a restart, or "".
func (d *daemon) reloadCluster(s *settings) string {
	was := d.current().s
	gossip := func(c *cluster.Config) bool { return c != nil && c.Gossip != nil }
	if !gossip(was.cluster) && !gossip(s.cluster) {
		return "" // static or none: the new generation's own
	}
	if reflect.DeepEqual(was.cluster, s.cluster) {
		return ""
	}
	s.cluster, s.proxy.Cluster = was.cluster, was.proxy.Cluster
	return "cluster"
}

// probeGossip fails when the gossip's bind address is taken, TCP or UDP
// (memberlist binds both), so that serve fails before it writes anything.
func probeGossip(s settings) error {
	if s.cluster == nil || s.cluster.Gossip == nil {
		return nil
	}
	a := s.cluster.Gossip.Bind
	if _, port, err := net.SplitHostPort(a); err == nil && port == "0" {
		return nil
	}
	ln, err := net.Listen("tcp", a)
	if err != nil {
		return fmt.Errorf("cluster.gossip.bind: %w", err)
	}
	ln.Close()
	pc, err := net.ListenPacket("udp", a)
	if err != nil {
		return fmt.Errorf("cluster.gossip.bind: %w", err)
	}
	pc.Close()
	return nil
}

// clusterCollector exports the current generation's members by state.
type clusterCollector struct{ d *daemon }

var membersDesc = prometheus.NewDesc("cellar_cluster_members",
	"Members of the cluster as this node sees them, by state: self, alive (owns keys), down (marked down here after a failed peer fetch, for cluster.down_for). Members that gossip found dead or gone are not counted.",
	[]string{"state"}, nil)

func (c clusterCollector) Describe(ch chan<- *prometheus.Desc) { ch <- membersDesc }

func (c clusterCollector) Collect(ch chan<- prometheus.Metric) {
	g := c.d.current()
	if g == nil || g.s.proxy.Cluster == nil {
		return
	}
	n := map[string]int{cluster.StateSelf: 0, cluster.StateAlive: 0, cluster.StateDown: 0}
	for _, m := range g.s.proxy.Cluster.Members(time.Now()) {
		n[m.State]++
	}
	for state, v := range n {
		ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(v), state)
	}
}

// clusterHealth writes the members' lines of /healthz: a count, then one
// line per member with its state.
func (d *daemon) clusterHealth(w io.Writer) {
	g := d.current()
	if g == nil || g.s.proxy.Cluster == nil {
		return
	}
	ms := g.s.proxy.Cluster.Members(time.Now())
	live := 0
	for _, m := range ms {
		if m.State != cluster.StateDown {
			live++
		}
	}
	fmt.Fprintf(w, "cluster: %d live, %d down\n", live, len(ms)-live)
	for _, m := range ms {
		fmt.Fprintf(w, "member %s %s\n", m.URL, m.State)
	}
}
