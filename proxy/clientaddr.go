package proxy

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// TrustedProxies decides which address of a request is its client's. The
// peer of the connection is the client unless it is one of the trusted
// networks (a load balancer, a CDN in front of cellar); then the
// X-Forwarded-For hops are read from the right, skipping trusted ones, and
// the first untrusted hop is the client. A hop that does not parse ends
// the walk: the last trusted hop is then the client, so a client cannot
// pick its own address by sending garbage. The zero value trusts nobody
// and always answers the peer. Safe for concurrent use.
type TrustedProxies struct {
	nets []netip.Prefix
}

// ParseTrustedProxies reads networks ("10.0.0.0/8") and single addresses
// ("192.0.2.7"), reporting every entry that is neither.
func ParseTrustedProxies(list []string) (TrustedProxies, error) {
	var t TrustedProxies
	var bad []string
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			t.nets = append(t.nets, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil {
			a = a.Unmap()
			t.nets = append(t.nets, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		bad = append(bad, fmt.Sprintf("%q", s))
	}
	if len(bad) > 0 {
		return TrustedProxies{}, fmt.Errorf("trusted proxies: %s: want a network such as 10.0.0.0/8 or an address", strings.Join(bad, ", "))
	}
	return t, nil
}

// Trusted reports whether a is in one of the trusted networks.
func (t TrustedProxies) Trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t.nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddr is the client address of r (see TrustedProxies). It is the
// zero Addr only when r.RemoteAddr is not an IP address and port (a test
// or a unix socket).
func (t TrustedProxies) ClientAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	client := ap.Addr().Unmap()
	if !t.Trusted(client) {
		return client
	}
	// Several X-Forwarded-For lines are one list (RFC 9110 §5.3); read
	// from the last hop back.
	xff := r.Header["X-Forwarded-For"]
	for i := len(xff) - 1; i >= 0; i-- {
		hops := strings.Split(xff[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			a, ok := parseHop(hops[j])
			if !ok {
				return client
			}
			client = a
			if !t.Trusted(a) {
				return client
			}
		}
	}
	return client
}

// parseHop reads one X-Forwarded-For member: an address, possibly with a
// port, possibly bracketed (IPv6).
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}
