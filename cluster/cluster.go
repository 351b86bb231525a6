package cluster

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config is a node's static view of the cluster (the `cluster` section of
// the configuration file).
type Config struct {
	// Self is this node's proxy address as the other members reach it: an
	// absolute http URL with no path beyond "/". Required.
	Self string
	// Peers are the other members' proxy addresses, in the same form as
	// Self. Self may be listed too; it is kept once.
	Peers []string
	// DownFor is how long a member that failed a peer fetch is left out
	// of ownership (its keys go to the next member); default 10s.
	DownFor time.Duration
}

// Owner is the member that owns a key: Self when it is this node, else the
// base URL of the peer to fetch the key from.
type Owner struct {
	Self bool
	URL  string // the member's address as configured, without a trailing "/"
}

// Cluster is one node's membership: the ring over Self and Peers, and the
// members marked down after a failed peer fetch. It is safe for concurrent
// use.
type Cluster struct {
	ring    *Ring
	self    int // index of Self in ring's members
	downFor time.Duration

	mu        sync.Mutex  // protects downUntil
	downUntil []time.Time // by member index; zero: up
}

// New validates c and returns the cluster it describes. Every problem is
// reported at once.
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
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	slices.Sort(members[1:]) // the order does not change ownership; a stable one reads better
	ring := NewRing(members)
	cl := &Cluster{ring: ring, downFor: c.DownFor, downUntil: make([]time.Time, len(ring.members))}
	if cl.downFor == 0 {
		cl.downFor = 10 * time.Second
	}
	cl.self = slices.Index(ring.members, self)
	return cl, nil
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

// Self returns this node's address.
func (c *Cluster) Self() string { return c.ring.members[c.self] }

// Members returns every member's address, Self included.
func (c *Cluster) Members() []string { return c.ring.Members() }

// Owner returns key's owner at now among the members not marked down. This
// node is never marked down, so there is always an owner.
func (c *Cluster) Owner(key string, now time.Time) Owner {
	c.mu.Lock()
	i := c.ring.Owner(key, func(i int) bool { return i != c.self && now.Before(c.downUntil[i]) })
	c.mu.Unlock()
	return Owner{Self: i == c.self, URL: c.ring.members[i]}
}

// MarkDown leaves member out of ownership from now for the configured
// DownFor. This node and unknown members are ignored.
func (c *Cluster) MarkDown(member string, now time.Time) {
	i := slices.Index(c.ring.members, member)
	if i < 0 || i == c.self {
		return
	}
	c.mu.Lock()
	c.downUntil[i] = now.Add(c.downFor)
	c.mu.Unlock()
}

// Down reports whether member is marked down at now.
func (c *Cluster) Down(member string, now time.Time) bool {
	i := slices.Index(c.ring.members, member)
	if i < 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return now.Before(c.downUntil[i])
}
