package cache

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"unsafe"

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
	return buildKey(primaryParts(r))
}

// primaryParts are the parts of r's primary key, the host not yet
// normalized.
func primaryParts(r *http.Request) (scheme, host, path, query string, forceQuery bool) {
	scheme = "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host = r.Host
	if host == "" && r.URL != nil {
		host = r.URL.Host
	}
	path = "/"
	if r.URL != nil {
		if p := r.URL.EscapedPath(); p != "" {
			path = p
			if p[0] != '/' {
				path = "/" + p // "*" (OPTIONS) or a malformed target
			}
		}
		query, forceQuery = r.URL.RawQuery, r.URL.ForceQuery
		// A raw "#" (never sent by conforming clients) would end the
		// URL in KeyFromURL; escape it so both agree.
		path, query = escapeHash(path), escapeHash(query)
	}
	return scheme, host, path, query, forceQuery
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
	b := appendKey(make([]byte, 0, keyLen(scheme, host, path, query, forceQuery)), scheme, host, path, query, forceQuery)
	return unsafe.String(unsafe.SliceData(b), len(b)) // b is not written again
}

// keyLen is the length of the key appendKey makes of these parts.
func keyLen(scheme, host, path, query string, forceQuery bool) int {
	n := len(scheme) + 3 + len(host) + len(path)
	if query != "" || forceQuery {
		n += 1 + len(query)
	}
	return n
}

// appendKey appends the key "scheme://host/path?query" to dst, host's
// ASCII letters lowercased (its default port already dropped).
func appendKey(dst []byte, scheme, host, path, query string, forceQuery bool) []byte {
	dst = append(append(dst, scheme...), "://"...)
	for i := 0; i < len(host); i++ {
		c := host[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	dst = append(dst, path...)
	if query != "" || forceQuery {
		dst = append(append(dst, '?'), query...)
	}
	return dst
}

// NormalizeHost is the host of a primary key: host lowercased, without
// the scheme's default port.
func NormalizeHost(scheme, host string) string { return normalizeHost(scheme, host) }

// normalizeHost lowercases host and drops the scheme's default port.
func normalizeHost(scheme, host string) string {
	host = dropDefaultPort(scheme, host)
	for i := 0; i < len(host); i++ {
		if c := host[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}

// dropDefaultPort drops the scheme's default port (and an empty one) from
// host.
func dropDefaultPort(scheme, host string) string {
	if strings.IndexByte(host, ':') < 0 {
		// The common case: no port, nothing to split (SplitHostPort would
		// allocate its error).
		return host
	}
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		return strings.TrimRight(host, ":") // empty ports
	}
	if port == "" || (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		if strings.IndexByte(h, ':') >= 0 {
			h = "[" + h + "]"
		}
		return h
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
	return key + encodingSep + coding
}

const encodingSep = "\x00e="

// ParseEncodingKey splits a key that EncodingKey made into the key of the
// identity object and the coding; ok is false for any other key.
func ParseEncodingKey(key string) (identity, coding string, ok bool) {
	i := strings.LastIndex(key, encodingSep)
	if i < 0 {
		return key, "", false
	}
	return key[:i], key[i+len(encodingSep):], true
}

// EncodingsField is an internal header field that the proxy adds to a stored
// response's Meta to record which content-coding variants of it are stored
// (under EncodingKey) and which fill of it they were made from. It is never
// taken from an origin's response (NewMeta, Freshen) and never sent to
// clients (ServeHeader, StripForClient).
const EncodingsField = "Cellar-Encodings"

// QueryMode says what the cache key keeps of a request's query.
type QueryMode int

const (
	// QueryKeep keeps the query as sent (minus IgnoreParams, or only
	// OnlyParams). The default.
	QueryKeep QueryMode = iota
	// QuerySort sorts the parameters by name (then value), so that
	// ?a=1&b=2 and ?b=2&a=1 are one object.
	QuerySort
	// QueryDrop drops the query from the key: every query of a path is
	// one object.
	QueryDrop
)

// ParseQueryMode reads "keep" (or empty), "sort" or "drop".
func ParseQueryMode(s string) (QueryMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "keep", "":
		return QueryKeep, nil
	case "sort":
		return QuerySort, nil
	case "drop":
		return QueryDrop, nil
	}
	return 0, fmt.Errorf("cache: query mode %q: want keep, sort or drop", s)
}

// String returns the mode's name, as ParseQueryMode reads it.
func (q QueryMode) String() string {
	switch q {
	case QueryKeep:
		return "keep"
	case QuerySort:
		return "sort"
	case QueryDrop:
		return "drop"
	}
	return fmt.Sprintf("QueryMode(%d)", int(q))
}

// KeyOptions shape the primary cache key of a request (as nginx's
// proxy_cache_key, Varnish's vcl_hash or Traffic Server's cachekey plugin
// do). The zero value is the normalized target URI of RFC 9111 §2.
type KeyOptions struct {
	// Query says what is kept of the query; default QueryKeep.
	Query QueryMode
	// IgnoreParams are globs (path.Match syntax: *, ?, [...]) of query
	// parameter names left out of the key, e.g. "utm_*", "fbclid".
	// Matched against the percent-decoded name.
	IgnoreParams []string
	// OnlyParams, when set, is an allow-list of globs: only the parameters
	// whose names match one are kept.
	OnlyParams []string
	// Headers are request header fields whose values join the key (e.g.
	// "X-Device"): requests that differ in them are different objects.
	Headers []string
	// Cookies are cookie names whose values join the key.
	Cookies []string
	// FoldCase lowercases the path, for origins whose paths are case
	// insensitive.
	FoldCase bool
}

// IsZero reports whether k is the default (the plain target URI).
func (k *KeyOptions) IsZero() bool {
	return k == nil || (k.Query == QueryKeep && len(k.IgnoreParams) == 0 && len(k.OnlyParams) == 0 &&
		len(k.Headers) == 0 && len(k.Cookies) == 0 && !k.FoldCase)
}

// canonical returns a copy of k with its header names canonicalized.
func (k KeyOptions) canonical() KeyOptions {
	if len(k.Headers) > 0 {
		hs := make([]string, len(k.Headers))
		for i, h := range k.Headers {
			hs[i] = textproto.CanonicalMIMEHeaderKey(h)
		}
		k.Headers = hs
	}
	return k
}

// validate reports every problem of k, each prefixed with name.
func (k *KeyOptions) validate(name string) []error {
	var errs []error
	if k.Query < QueryKeep || k.Query > QueryDrop {
		errs = append(errs, fmt.Errorf("%s.Query = %d: must be QueryKeep, QuerySort or QueryDrop", name, k.Query))
	}
	for field, globs := range map[string][]string{"IgnoreParams": k.IgnoreParams, "OnlyParams": k.OnlyParams} {
		for i, g := range globs {
			if _, err := path.Match(g, ""); err != nil || g == "" {
				errs = append(errs, fmt.Errorf("%s.%s[%d] = %q: must be a glob such as utm_* (path.Match syntax)", name, field, i, g))
			}
		}
	}
	for i, h := range k.Headers {
		if !httpheader.IsToken(h) {
			errs = append(errs, fmt.Errorf("%s.Headers[%d] = %q: must be a field name (token)", name, i, h))
		}
	}
	for i, c := range k.Cookies {
		if !httpheader.IsToken(c) {
			errs = append(errs, fmt.Errorf("%s.Cookies[%d] = %q: must be a cookie name (token)", name, i, c))
		}
	}
	return errs
}

// RequestKey returns the primary cache key of r shaped by k: PrimaryKey
// with the path case-folded, the query kept, sorted, filtered or dropped,
// and, when k names header fields or cookies, their values appended after
// a 0 byte as "\x00k=" plus a length-prefixed list (so that a purge of the
// URL, which matches every key that starts with it and a 0 byte, removes
// them all). A nil or zero k gives PrimaryKey(r). The same request always
// gives the same key; it is a pure function of r and k.
func RequestKey(r *http.Request, k *KeyOptions) string {
	base := PrimaryKey(r)
	if k.IsZero() {
		return base
	}
	key := k.shapeKey(base)
	if len(k.Headers) == 0 && len(k.Cookies) == 0 {
		return key
	}
	var b strings.Builder
	b.WriteString(key)
	b.WriteString("\x00k=")
	b.WriteString(SecondaryKey(k.Headers, r.Header))
	for _, name := range k.Cookies {
		b.WriteString(strconv.Itoa(len(name)))
		b.WriteString("c:")
		b.WriteString(name)
		c, err := r.Cookie(name)
		if err != nil {
			b.WriteByte('!')
			continue
		}
		b.WriteByte('=')
		b.WriteString(strconv.Itoa(len(c.Value)))
		b.WriteByte(':')
		b.WriteString(c.Value)
	}
	return b.String()
}

// URLKey returns the key of the absolute http(s) URL raw shaped by k, as
// RequestKey shapes a GET of it without header fields or cookies: the key
// that purges by URL and inspection use (a purge of it also removes the
// objects keyed by header fields and cookies). It fails like KeyFromURL.
func URLKey(raw string, k *KeyOptions) (string, error) {
	key, err := KeyFromURL(raw)
	if err != nil || k.IsZero() {
		return key, err
	}
	return k.shapeKey(key), nil
}

// shapeKey applies case folding and the query rules to a key built by
// buildKey ("scheme://host/path?query").
func (k *KeyOptions) shapeKey(key string) string {
	pathStart := strings.Index(key, "://") + 3
	if i := strings.IndexByte(key[pathStart:], '/'); i >= 0 {
		pathStart += i
	} else {
		pathStart = len(key)
	}
	path, query, hasQuery := strings.Cut(key[pathStart:], "?")
	if k.FoldCase {
		path = strings.ToLower(path)
	}
	if hasQuery {
		query, hasQuery = k.shapeQuery(query)
	}
	out := key[:pathStart] + path
	if hasQuery {
		out += "?" + query
	}
	return out
}

// shapeQuery applies Query, IgnoreParams and OnlyParams to a raw query. ok
// is false when nothing of it is kept.
func (k *KeyOptions) shapeQuery(query string) (string, bool) {
	if k.Query == QueryDrop {
		return "", false
	}
	if len(k.IgnoreParams) == 0 && len(k.OnlyParams) == 0 && k.Query == QueryKeep {
		return query, true
	}
	params := strings.Split(query, "&")
	kept := params[:0]
	for _, p := range params {
		if p == "" {
			continue
		}
		name, _, _ := strings.Cut(p, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		if matchAny(k.IgnoreParams, name) {
			continue
		}
		if len(k.OnlyParams) > 0 && !matchAny(k.OnlyParams, name) {
			continue
		}
		kept = append(kept, p)
	}
	if len(kept) == 0 {
		return "", false
	}
	if k.Query == QuerySort {
		slices.SortStableFunc(kept, func(a, b string) int {
			an, _, _ := strings.Cut(a, "=")
			bn, _, _ := strings.Cut(b, "=")
			if c := strings.Compare(an, bn); c != 0 {
				return c
			}
			return strings.Compare(a, b)
		})
	}
	return strings.Join(kept, "&"), true
}

// matchAny reports whether name matches one of the globs.
func matchAny(globs []string, name string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}
