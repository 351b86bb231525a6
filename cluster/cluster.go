package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config is a node's view of the cluster (the `cluster` section of the
// configuration file): the static members, or the gossip that finds them.
type Config struct {
	// Self is this node's proxy address as the other members reach it: an
	// absolute http URL with no path beyond "/". Required.
	Self string
	// Peers are the other members' proxy addresses, in the same form as
	// Self, for a static membership. Self may be listed too; it is kept
	// once. Empty with Gossip.
	Peers []string
	// Gossip, when set, finds the members by gossip (hashicorp/memberlist)
	// instead of Peers: the live members are those memberlist reports
	// alive, each carrying its proxy address in its metadata.
	Gossip *GossipConfig
	// DownFor is how long a member that failed a peer fetch is left out
	// of ownership (its keys go to the next member); default 10s.
	DownFor time.Duration
	// Logger receives membership changes and memberlist's own log, at
	// their levels (debug for memberlist's routine lines). Default
	// slog.Default().
	Logger *slog.Logger
}

// GossipConfig is the `cluster.gossip` section.
type GossipConfig struct {
	// Bind is the host:port memberlist listens on, TCP and UDP (port 0:
	// a free one, see Cluster.GossipAddr). Required.
	Bind string
	// Join are host:port gossip addresses of other members, tried at
	// Start and again, every few seconds, while this node knows no other
	// live member (the first node of a cluster has nobody to join yet).
	Join []string
}

// Owner is the member that owns a key: Self when it is this node, else the
// base URL of the peer to fetch the key from.
type Owner struct {
	Self bool
	URL  string // the member's address as configured, without a trailing "/"
}

// Member states in Members.
const (
	StateSelf  = "self"  // this node
	StateAlive = "alive" // a live member that owns keys
	StateDown  = "down"  // marked down here after a failed peer fetch: owns no keys until DownFor has passed
)

// Member is one member of the cluster as this node sees it.
type Member struct {
	URL   string `json:"url"`
	State string `json:"state"` // StateSelf, StateAlive or StateDown
}

// Cluster is one node's membership: the ring over the live members, and
// the members marked down after a failed peer fetch. The live members are
// Self and Peers, or what gossip reports. It is safe for concurrent use.
type Cluster struct {
	self    string
	downFor time.Duration
	log     *slog.Logger
	gossip  *gossip // nil with a static membership

	mu        sync.Mutex  // protects ring, selfIdx, downUntil, changes
	ring      *Ring       // the live members, self included
	selfIdx   int         // index of self in ring's members
	downUntil []time.Time // by ring member index; zero: up
	changes   int         // membership changes since New
}

// New validates c and returns the cluster it describes; every problem is
// reported at once. With gossip, nothing is bound until Start.
func New(c Config) (*Cluster, error) {
	var errs []error
	self, err := normalize(c.Self)
	if err != nil {
		errs = append(errs, fmt.Errorf("cluster.self: %w", err))
	}
	members := []string{self}
	for i, p := range c.Peers {
		m, err := normalize(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster.peers[%d]: %w", i, err))
			continue
		}
		members = append(members, m)
	}
	if c.DownFor < 0 {
		errs = append(errs, fmt.Errorf("cluster.down_for %v: must not be negative", c.DownFor))
	}
	if c.Gossip != nil {
		if len(c.Peers) > 0 {
			errs = append(errs, errors.New("cluster.peers and cluster.gossip: set one (gossip finds the members itself)"))
		}
		errs = append(errs, c.Gossip.check()...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cl := &Cluster{self: self, downFor: c.DownFor, log: c.Logger}
	if cl.downFor == 0 {
		cl.downFor = 10 * time.Second
	}
	if cl.log == nil {
		cl.log = slog.Default()
	}
	slices.Sort(members[1:]) // the order does not change ownership; a stable one reads better
	cl.setRing(NewRing(members))
	if c.Gossip != nil {
		cl.gossip = newGossip(cl, *c.Gossip)
	}
	return cl, nil
}

// check returns every problem of g.
func (g GossipConfig) check() []error {
	var errs []error
	if err := checkHostPort(g.Bind); err != nil {
		errs = append(errs, fmt.Errorf("cluster.gossip.bind: %w", err))
	}
	for i, j := range g.Join {
		if err := checkHostPort(j); err != nil {
			errs = append(errs, fmt.Errorf("cluster.gossip.join[%d]: %w", i, err))
		}
	}
	return errs
}

// checkHostPort checks a gossip address: host:port with a numeric port.
func checkHostPort(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err == nil {
		var n int
		n, err = strconv.Atoi(port)
		if err == nil && (n < 0 || n > 65535) {
			err = errors.New("port out of range")
		}
	}
	if err != nil || host == "" {
		return fmt.Errorf("%q: want host:port such as 10.0.0.2:7946", a)
	}
	return nil
}

// normalize checks a member address and returns it without a trailing "/".
func normalize(raw string) (string, error) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return "", errors.New("empty: want an absolute http URL such as http://10.0.0.2:8080")
	case err != nil:
		return "", fmt.Errorf("%q: %w", raw, err)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return "", fmt.Errorf("%q: want an absolute http or https URL such as http://10.0.0.2:8080", raw)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return "", fmt.Errorf("%q: want only a scheme, host and port", raw)
	}
	return strings.TrimSuffix(raw, "/"), nil
}

// Start joins the gossip (binding Config.Gossip.Bind); it does nothing for
// a static membership. A join that reaches nobody is not an error: the
// node serves alone and keeps trying. Close ends what Start began.
func (c *Cluster) Start() error {
	if c.gossip == nil {
		return nil
	}
	return c.gossip.start()
}

// Close leaves the gossip cleanly (the others drop this node at once
// instead of suspecting it first) and stops it. Static: nothing to do.
func (c *Cluster) Close() error {
	if c.gossip == nil {
		return nil
	}
	return c.gossip.close()
}

// GossipAddr returns the host:port the gossip listens on once started
// (the bound port when Config.Gossip.Bind asked for port 0), or "".
func (c *Cluster) GossipAddr() string {
	if c.gossip == nil {
		return ""
	}
	return c.gossip.addr()
}

// Self returns this node's address.
func (c *Cluster) Self() string { return c.self }

// Changes returns how many times the set of live members changed since
// New.
func (c *Cluster) Changes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changes
}

// Members returns every live member at now, Self included, with its state.
func (c *Cluster) Members(now time.Time) []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	ms := make([]Member, len(c.ring.members))
	for i, m := range c.ring.members {
		ms[i] = Member{URL: m, State: StateAlive}
		switch {
		case i == c.selfIdx:
			ms[i].State = StateSelf
		case now.Before(c.downUntil[i]):
			ms[i].State = StateDown
		}
	}
	return ms
}

// Owner returns key's owner at now among the live members not marked down.
// This node is never marked down, so there is always an owner.
func (c *Cluster) Owner(key string, now time.Time) Owner {
	c.mu.Lock()
	r, self := c.ring, c.selfIdx
	i := r.Owner(key, func(i int) bool { return i != self && now.Before(c.downUntil[i]) })
	c.mu.Unlock()
	return Owner{Self: i == self, URL: r.members[i]}
}

// MarkDown leaves member out of ownership from now for the configured
// DownFor. This node and unknown members are ignored.
func (c *Cluster) MarkDown(member string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.Index(c.ring.members, member)
	if i < 0 || i == c.selfIdx {
		return
	}
	c.downUntil[i] = now.Add(c.downFor)
}

// Down reports whether member is marked down at now.
func (c *Cluster) Down(member string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.Index(c.ring.members, member)
	return i >= 0 && now.Before(c.downUntil[i])
}

// setMembers makes members (self added when missing) the live members and
// reports whether that changed them. Down marks of members that stay are
// kept.
func (c *Cluster) setMembers(members []string) bool {
	members = append([]string{c.self}, slices.DeleteFunc(slices.Clone(members), func(m string) bool { return m == c.self })...)
	slices.Sort(members[1:])
	members = slices.Compact(members)
	c.mu.Lock()
	defer c.mu.Unlock()
	if slices.Equal(members, c.ring.members) {
		return false
	}
	old, oldDown := c.ring.members, c.downUntil
	c.setRing(NewRing(members))
	for i, m := range old {
		if j := slices.Index(c.ring.members, m); j >= 0 {
			c.downUntil[j] = oldDown[i]
		}
	}
	c.changes++
	return true
}

// setRing installs r; c.mu is held (or c is new).
func (c *Cluster) setRing(r *Ring) {
	c.ring = r
	c.selfIdx = slices.Index(r.members, c.self)
	c.downUntil = make([]time.Time, len(r.members))
}
