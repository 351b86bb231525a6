// Package httpheader holds the pieces of HTTP field grammar and handling
// (RFC 9110) that several of cellar's packages need: tokens, optional
// whitespace, and the hop-by-hop fields that a proxy never forwards or
// stores (RFC 9110 §7.6.1, RFC 9111 §3.1).
package httpheader

import (
	"net/http"
	"net/textproto"
	"strings"
)

// hopByHop are the connection-specific fields of RFC 9110 §7.6.1, plus
// Proxy-Connection and Keep-Alive, which implementations still send.
var hopByHop = map[string]bool{
	"Connection":          true,
	"Keep-Alive":          true,
	"Proxy-Connection":    true,
	"Te":                  true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
	"Trailer":             true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
}

// IsHopByHop reports whether the canonical field name is hop-by-hop.
func IsHopByHop(name string) bool { return hopByHop[name] }

// ConnectionFields returns the canonical names that h's Connection field
// lists, or nil.
func ConnectionFields(h http.Header) []string {
	var names []string
	for _, v := range h["Connection"] {
		for _, f := range strings.Split(v, ",") {
			if f = textproto.TrimString(f); f != "" {
				names = append(names, textproto.CanonicalMIMEHeaderKey(f))
			}
		}
	}
	return names
}

// RemoveHopByHop deletes the hop-by-hop fields from h, including every
// field that Connection names (RFC 9110 §7.6.1).
func RemoveHopByHop(h http.Header) {
	for _, f := range ConnectionFields(h) {
		delete(h, f)
	}
	for f := range hopByHop {
		delete(h, f)
	}
}

// IsToken reports whether s is a non-empty RFC 9110 §5.6.2 token.
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !IsTchar(s[i]) {
			return false
		}
	}
	return true
}

// IsTchar reports whether c may appear in a token (RFC 9110 §5.6.2).
func IsTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// TrimOWS trims RFC 9110 §5.6.3 optional whitespace (spaces and tabs).
func TrimOWS(s string) string { return strings.Trim(s, " \t") }
