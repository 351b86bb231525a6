package proxy

import (
	"net"
	"net/http"
	"net/textproto"
	"strings"
)

// hopByHop are the connection-specific fields of RFC 9110 §7.6.1, plus the
// older Proxy-Connection and Keep-Alive that implementations still send.
var hopByHop = []string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// removeHopByHop deletes the hop-by-hop fields from h, including every field
// that Connection names (RFC 9110 §7.6.1). It applies to both legs.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for _, f := range strings.Split(v, ",") {
			if f = textproto.TrimString(f); f != "" {
				h.Del(f)
			}
		}
	}
	for _, f := range hopByHop {
		h.Del(f)
	}
}

// setForwarded adds X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host and
// Via (RFC 9110 §7.6.3) to out, the request about to go upstream, from in.
func (s *Server) setForwarded(out http.Header, in *http.Request) {
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
