package cache

import "testing"

// TestValidTargetedValue checks RFC 9213 §2.1 as the conformance suite's
// cdn-cache-control tests read it: a targeted field is a Structured Field
// Dictionary with Integer delta-seconds, or it is ignored.
func TestValidTargetedValue(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"max-age=60", true},
		{"foobar, max-age=3600", true},
		{"no-store", true},
		{"private, no-cache", true},
		{"max-age=60, stale-while-revalidate=30;x=?1", true},
		{`no-cache=("a" "b")`, true},
		{"max-age=0", true},
		{`max-age="10000"`, false},
		{"max-age=10000, &&&&&", false},
		{"MaX-aGe=3600", false},
		{"max-age=1.5", false},
		{"max-age =100", false},
		{"max-age= 100", false},
		{"max-age=60,", false},
		{"", false},
		{`max-age="x`, false},
	} {
		if got := validTargetedValue(tt.in); got != tt.ok {
			t.Errorf("validTargetedValue(%q) = %v, want %v", tt.in, got, tt.ok)
		}
	}
}
