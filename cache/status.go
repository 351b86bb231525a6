package cache

import (
	"strconv"
	"strings"
	"time"

	"github.com/cellar-cache/cellar/internal/httpheader"
)

// Status is one Cache-Status field member (RFC 9211) for cache "cellar".
type Status struct {
	// Hit: the response was served from cache without going forward.
	Hit bool
	// Fwd is why the request went forward: "", "uri-miss", "vary-miss",
	// "miss", "request", "stale" or "bypass" (RFC 9211 §2.2).
	Fwd string
	// FwdStatus is the status of the forward response; 0 omits it.
	FwdStatus int
	// TTL is the remaining freshness (negative when stale); printed only
	// when HasTTL.
	TTL    time.Duration
	HasTTL bool
	// Stored: the forward response was stored.
	Stored bool
	// Collapsed: the request was collapsed with another one.
	Collapsed bool
	// Key is the cache key; printed only when non-empty (Debug).
	Key string
	// Detail is free-form detail; printed as an sf-token when it is one,
	// else as an sf-string.
	Detail string
}

// String formats s as a Cache-Status member, e.g. `cellar; hit; ttl=57` or
// `cellar; fwd=miss; fwd-status=200; stored; ttl=60` (RFC 9211, RFC 8941).
func (s Status) String() string {
	var b strings.Builder
	b.Grow(64)
	b.WriteString("cellar")
	if s.Hit {
		b.WriteString("; hit")
	}
	if s.Fwd != "" {
		b.WriteString("; fwd=")
		writeItem(&b, s.Fwd)
	}
	if s.FwdStatus != 0 {
		b.WriteString("; fwd-status=")
		b.WriteString(strconv.Itoa(s.FwdStatus))
	}
	if s.Stored {
		b.WriteString("; stored")
	}
	if s.Collapsed {
		b.WriteString("; collapsed")
	}
	if s.HasTTL {
		b.WriteString("; ttl=")
		b.WriteString(strconv.FormatInt(int64(s.TTL/time.Second), 10))
	}
	if s.Key != "" {
		b.WriteString("; key=")
		writeString(&b, s.Key)
	}
	if s.Detail != "" {
		b.WriteString("; detail=")
		writeItem(&b, s.Detail)
	}
	return b.String()
}

// writeItem writes v as an sf-token (RFC 8941 §3.3.4) when it is one, else
// as an sf-string.
func writeItem(b *strings.Builder, v string) {
	if isSFToken(v) {
		b.WriteString(v)
		return
	}
	writeString(b, v)
}

func isSFToken(v string) bool {
	if v == "" {
		return false
	}
	c := v[0]
	if !(('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || c == '*') {
		return false
	}
	for i := 1; i < len(v); i++ {
		if c := v[i]; !httpheader.IsTchar(c) && c != ':' && c != '/' {
			return false
		}
	}
	return true
}

// writeString writes v as an sf-string (RFC 8941 §3.3.3): printable ASCII
// only, with '"' and '\' escaped. Other bytes (such as the 0 byte of
// variant keys) are written as %XX, and '%' as %25, so the value stays
// readable and unambiguous.
func writeString(b *strings.Builder, v string) {
	const hex = "0123456789ABCDEF"
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e || c == '%':
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

// AgeValue formats d as an Age field value (RFC 9111 §5.1): whole seconds,
// negative as 0, clamped at 2147483648 (§1.2.2).
func AgeValue(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s <= 0:
		return "0"
	case s > maxDelta:
		s = maxDelta
	}
	return strconv.FormatInt(s, 10)
}
