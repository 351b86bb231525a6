package cache

import (
	"testing"
	"time"
)

// TestCacheStatus covers RFC 9211 §2 and RFC 8941 serialization.
func TestCacheStatus(t *testing.T) {
	tests := []struct {
		name string
		s    Status
		want string
	}{
		{"Hit", Status{Hit: true, TTL: 57 * time.Second, HasTTL: true}, `cellar; hit; ttl=57`},
		{"StoredMiss", Status{Fwd: "miss", FwdStatus: 200, Stored: true, TTL: 60 * time.Second, HasTTL: true}, `cellar; fwd=miss; fwd-status=200; stored; ttl=60`},
		{"NegativeTTL", Status{Hit: true, TTL: -3 * time.Second, HasTTL: true}, `cellar; hit; ttl=-3`},
		{"Collapsed", Status{Fwd: "uri-miss", Collapsed: true}, `cellar; fwd=uri-miss; collapsed`},
		{"DetailToken", Status{Fwd: "stale", Detail: "must-revalidate"}, `cellar; fwd=stale; detail=must-revalidate`},
		{"DetailString", Status{Fwd: "bypass", Detail: `no "store"`}, `cellar; fwd=bypass; detail="no \"store\""`},
		{"KeyEscaped", Status{Hit: true, Key: "http://h/a\x00v=1%"}, `cellar; hit; key="http://h/a%00v=1%25"`},
		{"Bare", Status{}, `cellar`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.String(); got != tt.want {
				t.Errorf("String = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestAgeValue covers §5.1 and the §1.2.2 clamp.
func TestAgeValue(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0"}, {-time.Second, "0"}, {1500 * time.Millisecond, "1"},
		{time.Hour, "3600"}, {1 << 62, "2147483648"},
	}
	for _, tt := range tests {
		if got := AgeValue(tt.d); got != tt.want {
			t.Errorf("AgeValue(%v) = %s, want %s", tt.d, got, tt.want)
		}
	}
}
