package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/cellar-cache/cellar/internal/httpheader"
)

// removeHopByHop deletes the hop-by-hop fields from h, including every field
// that Connection names (RFC 9110 §7.6.1). It applies to both legs.
func removeHopByHop(h http.Header) { httpheader.RemoveHopByHop(h) }

// setForwarded adds X-Forwarded-For, X-Real-IP, X-Forwarded-Proto,
// X-Forwarded-Host, Via (RFC 9110 §7.6.3) and X-Request-ID (the one the
// access line shows) to out, the request about to go upstream, from in.
// X-Forwarded-For keeps the hops received only from a trusted proxy
// (s.clients) and appends the peer; from any other peer it is the peer
// alone, so that a client cannot pose as another. X-Real-IP is the client
// address that rule gives.
func (s *Server) setForwarded(out http.Header, in *http.Request) {
	out["X-Request-Id"] = []string{s.requestID(in)}
	if ip, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		peer, _ := netip.ParseAddr(ip)
		if prior := in.Header["X-Forwarded-For"]; len(prior) > 0 && s.clients.Trusted(peer) {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		out.Set("X-Forwarded-For", ip)
		out.Set("X-Real-IP", s.clients.ClientAddr(in).String())
	}
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	out.Set("X-Forwarded-Proto", proto)
	out.Set("X-Forwarded-Host", in.Host)
	out.Add("Via", viaValue(in.ProtoMajor, in.ProtoMinor, s.via))
}

// viaValue is one Via member: the received protocol and our pseudonym.
func viaValue(major, minor int, via string) string {
	switch {
	case major == 1 && minor == 1:
		return "1.1 " + via
	case major == 2:
		return "2 " + via
	case major == 1 && minor == 0:
		return "1.0 " + via
	}
	return "1.1 " + via
}

// apply rewrites the origin request out: removes, sets and adds fields,
// then overrides Host.
func (h *HeaderRewrite) apply(out *http.Request) {
	for _, name := range h.Remove {
		out.Header.Del(name)
	}
	for name, v := range h.Set {
		out.Header.Set(name, v)
	}
	for name, v := range h.Add {
		out.Header.Add(name, v)
	}
	if h.Host != "" {
		out.Host = h.Host
	}
}
