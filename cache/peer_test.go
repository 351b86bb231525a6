package cache

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestPeerMetaKeepsTheOwnersFreshness: a copy of an owner's answer is fresh
// for exactly the ttl the owner had left, its age going on from the
// owner's Age (RFC 9111 §4.2.3), whatever this node's rules say, and it
// stores no Cache-Status member of the caches it came through.
func TestPeerMetaKeepsTheOwnersFreshness(t *testing.T) {
	p, err := New(Options{Rules: []Rule{{Prefix: "/", TTL: time.Hour, Grace: time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "http://a.test/x", nil)
	h := http.Header{"Cache-Control": {"max-age=600"}, "Age": {"150"}, "Cache-Status": {"cellar; hit; ttl=450"}}
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	m := p.PeerMeta(r, 200, h, 450*time.Second, at)
	if _, ok := m.Header["Cache-Status"]; ok {
		t.Error("the copy stores the caches' Cache-Status")
	}
	fresh := p.Evaluate(r, &m, at.Add(449*time.Second))
	if fresh.Action != Serve || fresh.Age < 599*time.Second {
		t.Errorf("449 s after arrival: %v, age %v; want fresh, age 599 s (the owner's 150 + 449)", fresh.Action, fresh.Age)
	}
	if stale := p.Evaluate(r, &m, at.Add(451*time.Second)); stale.Action == Serve {
		t.Errorf("451 s after arrival (past the owner's ttl of 450 s): %v, want not fresh", stale.Action)
	}
}
