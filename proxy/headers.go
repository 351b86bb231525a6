package proxy

import (
	"net"
	"net/http"
	"strings"

	"github.com/cellar-cache/cellar/internal/httpheader"
)

// removeHopByHop deletes the hop-by-hop fields from h, including every field
// that Connection names (RFC 9110 §7.6.1). It applies to both legs.
func removeHopByHop(h http.Header) { httpheader.RemoveHopByHop(h) }

// setForwarded adds X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host,
// Via (RFC 9110 §7.6.3) and X-Request-ID (the one the access line shows)
// to out, the request about to go upstream, from in.
func (s *Server) setForwarded(out http.Header, in *http.Request) {
	out["X-Request-Id"] = []string{s.requestID(in)}
	if ip, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		if prior := in.Header["X-Forwarded-For"]; len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		out.Set("X-Forwarded-For", ip)
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
