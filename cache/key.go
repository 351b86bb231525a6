package cache

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/cellar-cache/cellar/internal/httpheader"
)

// ErrBadURL is returned (wrapped) by KeyFromURL for a URL that is relative,
// unparsable or not http/https.
var ErrBadURL = errors.New("cache: not an absolute http(s) URL")

// PrimaryKey returns the primary cache key of r (RFC 9111 §2, §4): the
// normalized absolute target URI. The scheme is https when r.TLS is set,
// else http; the host (from r.Host, else r.URL.Host) is lowercased and its
// default port dropped; the path is r.URL.EscapedPath() ("/" if empty); the
// query follows "?" as sent.
func PrimaryKey(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if host == "" && r.URL != nil {
		host = r.URL.Host
	}
	path, query, force := "/", "", false
	if r.URL != nil {
		if p := r.URL.EscapedPath(); p != "" {
			path = p
			if p[0] != '/' {
				path = "/" + p // "*" (OPTIONS) or a malformed target
			}
		}
		query, force = r.URL.RawQuery, r.URL.ForceQuery
		// A raw "#" (never sent by conforming clients) would end the
		// URL in KeyFromURL; escape it so both agree.
		path, query = escapeHash(path), escapeHash(query)
	}
	return buildKey(scheme, host, path, query, force)
}

// KeyFromURL normalizes an absolute http or https URL string the way
// PrimaryKey normalizes a request.
func KeyFromURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrBadURL, raw, err)
	}
	return keyFromParsed(u, raw)
}

func escapeHash(s string) string {
	if strings.IndexByte(s, '#') < 0 {
		return s
	}
	return strings.ReplaceAll(s, "#", "%23")
}

func keyFromParsed(u *url.URL, raw string) (string, error) {
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("%w: %q", ErrBadURL, raw)
	}
	if normalizeHost(scheme, u.Host) == "" {
		return "", fmt.Errorf("%w: %q: empty host", ErrBadURL, raw)
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return buildKey(scheme, u.Host, path, u.RawQuery, u.ForceQuery), nil
}

func buildKey(scheme, host, path, query string, forceQuery bool) string {
	host = normalizeHost(scheme, host)
	n := len(scheme) + 3 + len(host) + len(path)
	if query != "" || forceQuery {
		n += 1 + len(query)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(scheme)
	b.WriteString("://")
	b.WriteString(host)
	b.WriteString(path)
	if query != "" || forceQuery {
		b.WriteByte('?')
		b.WriteString(query)
	}
	return b.String()
}

// normalizeHost lowercases host and drops the scheme's default port.
func normalizeHost(scheme, host string) string {
	if strings.IndexByte(host, ':') < 0 {
		// The common case: no port, nothing to split (SplitHostPort would
		// allocate its error).
	} else if h, port, err := net.SplitHostPort(host); err == nil {
		if port == "" || (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
			if strings.IndexByte(h, ':') >= 0 {
				h = "[" + h + "]"
			}
			host = h
		}
	} else {
		host = strings.TrimRight(host, ":") // empty ports
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}

// VaryFields returns the field names listed in all Vary lines of h (RFC 9111
// §4.1), canonicalised, deduplicated and sorted. star is true if "*"
// appears: such a response never matches a later request.
func VaryFields(h http.Header) (fields []string, star bool) {
	for _, line := range h["Vary"] {
		for line != "" {
			var f string
			f, line, _ = strings.Cut(line, ",")
			f = textproto.TrimString(f)
			switch {
			case f == "*":
				star = true
			case httpheader.IsToken(f):
				fields = append(fields, textproto.CanonicalMIMEHeaderKey(f))
			}
		}
	}
	slices.Sort(fields)
	return slices.Compact(fields), star
}

// SecondaryKey returns the secondary cache key (RFC 9111 §4.1) for the
// request fields named in fields (as from VaryFields): each field's lines
// combined with ", ", whitespace around commas removed and other runs of
// whitespace collapsed to one space, case kept. An absent field differs
// from an empty one. Names and values are length-prefixed, so different
// inputs never give the same key.
func SecondaryKey(fields []string, req http.Header) string {
	if len(fields) == 0 {
		return ""
	}
	var b strings.Builder
	for _, f := range fields {
		b.WriteString(strconv.Itoa(len(f)))
		b.WriteByte(':')
		b.WriteString(f)
		lines, ok := req[textproto.CanonicalMIMEHeaderKey(f)]
		if !ok {
			b.WriteByte('!')
			continue
		}
		v := normalizeFieldValue(lines)
		b.WriteByte('=')
		b.WriteString(strconv.Itoa(len(v)))
		b.WriteByte(':')
		b.WriteString(v)
	}
	return b.String()
}

// normalizeFieldValue combines lines with "," and normalizes whitespace:
// none around commas, single spaces elsewhere, none at the ends.
func normalizeFieldValue(lines []string) string {
	var b []byte
	for i, l := range lines {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, l...)
	}
	out := b[:0]
	space := false
	for _, c := range b {
		if c == ' ' || c == '\t' {
			space = true
			continue
		}
		if c == ',' {
			space = false
			out = append(out, c)
			continue
		}
		if space && len(out) > 0 && out[len(out)-1] != ',' {
			out = append(out, ' ')
		}
		space = false
		out = append(out, c)
	}
	return string(out)
}

// VariantKey returns the key of one Vary variant of primary: primary, a 0
// byte, "v=" and secondary. Every variant key of a URL starts with
// primary+"\x00".
func VariantKey(primary, secondary string) string {
	return primary + "\x00v=" + secondary
}

// EncodingKey returns the key of the content-coding variant coding (e.g.
// "gzip") of key.
func EncodingKey(key, coding string) string {
	return key + "\x00e=" + coding
}

// EncodingsField is an internal header field that the proxy adds to a stored
// response's Meta to record which content-coding variants of it are stored
// (under EncodingKey) and which fill of it they were made from. It is never
// taken from an origin's response (NewMeta, Freshen) and never sent to
// clients (ServeHeader, StripForClient).
const EncodingsField = "Cellar-Encodings"
