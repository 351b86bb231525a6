package proxy

import (
	"net/http"
	"strings"
	"testing"
)

func TestTrustedProxiesClientAddr(t *testing.T) {
	tp, err := ParseTrustedProxies([]string{"10.0.0.0/8", "192.0.2.7", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"untrusted peer ignores the header", "203.0.113.9:4000", []string{"1.2.3.4"}, "203.0.113.9"},
		{"trusted peer, one hop", "10.1.2.3:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"trusted chain skipped from the right", "10.1.2.3:4000", []string{"6.6.6.6, 198.51.100.1, 192.0.2.7"}, "198.51.100.1"},
		{"spoofed left hops are not the client", "10.1.2.3:4000", []string{"6.6.6.6", "198.51.100.1"}, "198.51.100.1"},
		{"all trusted: the leftmost", "10.1.2.3:4000", []string{"10.9.9.9, 192.0.2.7"}, "10.9.9.9"},
		{"garbage hop ends the walk", "10.1.2.3:4000", []string{"6.6.6.6, nonsense, 10.4.4.4"}, "10.4.4.4"},
		{"no header: the peer", "10.1.2.3:4000", nil, "10.1.2.3"},
		{"ipv6 peer trusted, hop with port", "[::1]:4000", []string{"198.51.100.1:5555"}, "198.51.100.1"},
		{"bracketed ipv6 hop", "[::1]:4000", []string{"[2001:db8::1]"}, "2001:db8::1"},
		{"v4-mapped peer", "[::ffff:10.0.0.1]:4000", []string{"198.51.100.1"}, "198.51.100.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
			if tc.xff != nil {
				r.Header["X-Forwarded-For"] = tc.xff
			}
			if got := tp.ClientAddr(r).String(); got != tc.want {
				t.Errorf("ClientAddr = %s, want %s", got, tc.want)
			}
		})
	}
	var none TrustedProxies
	r := &http.Request{RemoteAddr: "10.1.2.3:1", Header: http.Header{"X-Forwarded-For": {"1.1.1.1"}}}
	if got := none.ClientAddr(r).String(); got != "10.1.2.3" {
		t.Errorf("zero TrustedProxies: ClientAddr = %s, want the peer", got)
	}
}

func TestParseTrustedProxiesReportsEveryBadEntry(t *testing.T) {
	_, err := ParseTrustedProxies([]string{"10.0.0.0/8", "nope", "300.1.1.1"})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`"nope"`, `"300.1.1.1"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
