package cluster

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func keys(n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = "http://cellar.test/object/" + strconv.Itoa(i)
	}
	return ks
}

var three = []string{"http://127.0.0.1:8080", "http://127.0.0.1:8090", "http://127.0.0.1:8100"}

// TestRingBalance checks that rendezvous hashing spreads 10,000 keys
// evenly over three members (each within 10% of a third).
func TestRingBalance(t *testing.T) {
	r := NewRing(three)
	counts := make([]int, 3)
	for _, k := range keys(10000) {
		counts[r.Owner(k, nil)]++
	}
	t.Logf("keys per member: %v", counts)
	for i, n := range counts {
		if n < 3000 || n > 3667 {
			t.Errorf("member %d owns %d of 10000 keys, want about 3333", i, n)
		}
	}
}

// TestMembershipChangeMovesOneNth measures the keys that move when a
// fourth member joins three: about a quarter, and only to the new member.
func TestMembershipChangeMovesOneNth(t *testing.T) {
	before := NewRing(three)
	after := NewRing(append(append([]string(nil), three...), "http://127.0.0.1:8110"))
	const n = 10000
	moved := 0
	for _, k := range keys(n) {
		a, b := before.Owner(k, nil), after.Owner(k, nil)
		if a == b {
			continue
		}
		moved++
		if b != 3 {
			t.Fatalf("key %s moved from member %d to %d, not to the new member", k, a, b)
		}
	}
	t.Logf("3 -> 4 members: %d of %d keys moved (%.1f%%; ideal 25%%)", moved, n, 100*float64(moved)/n)
	if moved < 2200 || moved > 2800 {
		t.Errorf("%d of %d keys moved, want about %d", moved, n, n/4)
	}
}

// TestEveryNodeAgreesOnOwners checks that nodes configured with the same
// members, each naming itself as self, agree on every key's owner.
func TestEveryNodeAgreesOnOwners(t *testing.T) {
	var nodes []*Cluster
	for i, self := range three {
		var peers []string
		for j, p := range three {
			if j != i {
				peers = append(peers, p+"/")
			}
		}
		c, err := New(Config{Self: self, Peers: peers})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, c)
	}
	now := time.Now()
	selfOwned := 0
	for _, k := range keys(3000) {
		want := nodes[0].Owner(k, now).URL
		for i, c := range nodes {
			o := c.Owner(k, now)
			if o.URL != want {
				t.Fatalf("node %d: owner of %s is %s, node 0 says %s", i, k, o.URL, want)
			}
			if o.Self != (o.URL == three[i]) {
				t.Fatalf("node %d: owner %+v has the wrong Self", i, o)
			}
			if o.Self {
				selfOwned++
			}
		}
	}
	if selfOwned != 3000 {
		t.Errorf("%d keys are owned by the node asking, want each of the 3000 once", selfOwned)
	}
}

// TestMarkDown checks that a member marked down loses its keys to the
// others for DownFor, and gets them back afterwards.
func TestMarkDown(t *testing.T) {
	c, err := New(Config{Self: three[0], Peers: three[1:], DownFor: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var owned []string
	for _, k := range keys(1000) {
		if c.Owner(k, now).URL == three[2] {
			owned = append(owned, k)
		}
	}
	if len(owned) == 0 {
		t.Fatal("member 2 owns none of 1000 keys")
	}
	c.MarkDown(three[2], now)
	c.MarkDown(three[0], now) // self: ignored
	if !c.Down(three[2], now) || c.Down(three[0], now) {
		t.Fatalf("Down: member 2 %v (want true), self %v (want false)", c.Down(three[2], now), c.Down(three[0], now))
	}
	for _, k := range owned {
		if o := c.Owner(k, now.Add(59*time.Second)); o.URL == three[2] {
			t.Fatalf("key %s still owned by the member marked down", k)
		}
		if o := c.Owner(k, now.Add(time.Minute)); o.URL != three[2] {
			t.Fatalf("key %s owned by %s after the down time, want %s back", k, o.URL, three[2])
		}
	}
}

func TestNewRejectsBadAddresses(t *testing.T) {
	_, err := New(Config{Self: "127.0.0.1:8080", Peers: []string{"http://a:1/x", "ftp://b", ""}, DownFor: -1})
	if err == nil {
		t.Fatal("New accepted bad addresses")
	}
	for _, want := range []string{"cluster.self", "cluster.peers[0]", "cluster.peers[1]", "cluster.peers[2]", "cluster.down_for"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
