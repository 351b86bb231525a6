package cache

import (
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
)

// safeMethods are the methods whose responses never invalidate (RFC 9110
// §9.2.1).
func safeMethod(m string) bool {
	switch m {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// Invalidations returns the primary keys that a response to r invalidates
// (RFC 9111 §4.4): for a non-error (2xx or 3xx) response to an unsafe or
// unknown method, the target URI and the Location and Content-Location URIs
// (resolved against the target URI) that share its origin (scheme and host).
func Invalidations(r *http.Request, status int, h http.Header) []string {
	if safeMethod(r.Method) || status < 200 || status > 399 {
		return nil
	}
	target := PrimaryKey(r)
	keys := []string{target}
	base, err := url.Parse(target)
	if err != nil {
		return keys
	}
	for _, f := range [...]string{"Location", "Content-Location"} {
		v := textproto.TrimString(h.Get(f))
		if v == "" {
			continue
		}
		ref, err := url.Parse(v)
		if err != nil {
			continue
		}
		u := base.ResolveReference(ref)
		k, err := keyFromParsed(u, v)
		if err != nil {
			continue
		}
		if u.Scheme != base.Scheme || normalizeHost(u.Scheme, u.Host) != base.Host {
			continue // §4.4: only the same origin
		}
		dup := false
		for _, have := range keys {
			dup = dup || have == k
		}
		if !dup {
			keys = append(keys, k)
		}
	}
	return keys
}

// DefaultTagFields are the response fields that carry purge tags unless
// Options.TagFields says otherwise: Surrogate-Key (space-separated, as
// Fastly and Varnish use it) and Cache-Tag (comma-separated, as Cloudflare
// does).
var DefaultTagFields = []string{"Surrogate-Key", "Cache-Tag"}

// Tags returns the purge tags of a response from DefaultTagFields, in
// order, deduplicated.
func Tags(h http.Header) []string { return tagsFrom(h, DefaultTagFields) }

// Tags returns the purge tags of a response from the configured tag fields.
func (p *Policy) Tags(h http.Header) []string { return tagsFrom(h, p.tagFields) }

// tagsFrom splits the values of the canonical fields on white space and
// commas; a tag never contains either.
func tagsFrom(h http.Header, fields []string) []string {
	var tags []string
	var seen map[string]bool
	for _, f := range fields {
		for _, l := range h[f] {
			for _, t := range strings.FieldsFunc(l, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
				if seen == nil {
					seen = map[string]bool{}
				}
				if !seen[t] {
					seen[t] = true
					tags = append(tags, t)
				}
			}
		}
	}
	return tags
}
