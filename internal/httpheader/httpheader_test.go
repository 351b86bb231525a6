package httpheader

import (
	"net/http"
	"testing"
)

func TestRemoveHopByHopIncludesFieldsNamedInConnection(t *testing.T) {
	h := http.Header{
		"Connection":   {"X-Hop, keep-alive", " x-other "},
		"X-Hop":        {"1"},
		"X-Other":      {"1"},
		"Keep-Alive":   {"timeout=5"},
		"Te":           {"trailers"},
		"X-End-To-End": {"kept"},
	}
	RemoveHopByHop(h)
	if len(h) != 1 || h.Get("X-End-To-End") != "kept" {
		t.Errorf("after removal: %v", h)
	}
}

func TestIsToken(t *testing.T) {
	for s, want := range map[string]bool{"gzip": true, "x-gzip": true, "a!#$%&'*+-.^_`|~z": true, "": false, "a b": false, "a,b": false, "\"q\"": false, "ü": false} {
		if got := IsToken(s); got != want {
			t.Errorf("IsToken(%q) = %v", s, got)
		}
	}
}

func FuzzConnectionFields(f *testing.F) {
	for _, s := range []string{"close", "X-A, x-b", " , ,", "keep-alive,Upgrade"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h := http.Header{"Connection": {s}}
		for _, n := range ConnectionFields(h) {
			if n == "" {
				t.Fatalf("empty name from %q", s)
			}
		}
		RemoveHopByHop(h)
		if _, ok := h["Connection"]; ok {
			t.Fatal("Connection survived")
		}
	})
}
