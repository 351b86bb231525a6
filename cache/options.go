package cache

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/cellar-cache/cellar/internal/httpheader"
)

// ErrInvalidOptions is wrapped by the error that Validate returns.
var ErrInvalidOptions = errors.New("cache: invalid options")

// Options configure a Policy. Every field's zero value means its default.
type Options struct {
	// HeuristicFraction is the fraction of (Date - Last-Modified) used as a
	// heuristic freshness lifetime (RFC 9111 §4.2.2). Default 0.1; must be in
	// (0, 1].
	HeuristicFraction float64
	// HeuristicMax caps a heuristic freshness lifetime. Default 24h.
	HeuristicMax time.Duration
	// DefaultTTL is the lifetime of storable responses with no explicit
	// freshness (no s-maxage, max-age or Expires). It replaces the heuristic
	// of §4.2.2 and also makes such responses storable. Default 0: the RFC
	// decides (heuristic only where allowed).
	DefaultTTL time.Duration
	// Targets lists the RFC 9213 targeted cache-control fields that cellar
	// obeys, highest priority first. Default []string{"CDN-Cache-Control"}.
	// Surrogate-Control (Edge Architecture 1.0: max-age, no-store,
	// stale-while-revalidate, stale-if-error) is honoured after the targets
	// and before Cache-Control.
	Targets []string
	// StripCDNCacheControl removes CDN-Cache-Control from responses to
	// clients. Default false: it is aimed at every CDN on the path (RFC
	// 9213 §3), so cellar obeys it and passes it on for any CDN in front
	// of it, as the HTTP caching conformance suite expects. Other targeted
	// fields (cellar's own, say) and Surrogate-Control are always removed.
	StripCDNCacheControl bool
	// Cookies says when a stored Set-Cookie is served from cache; a
	// response with Set-Cookie is stored either way. Default CookiesNever.
	Cookies CookiePolicy
	// StaleWhileRevalidate is the RFC 5861 §3 window applied when the origin
	// sends none. Default 0: the origin decides.
	StaleWhileRevalidate time.Duration
	// StaleIfError is the RFC 5861 §4 window applied when the origin sends
	// none. Default 0: the origin decides.
	StaleIfError time.Duration
	// Rules are per path-prefix overrides; the first matching rule wins.
	// Default none.
	Rules []Rule
	// Debug makes Cache-Status carry the cache key (key=).
	Debug bool
	// TagFields are the response fields whose values (separated by white
	// space or commas) are the object's purge tags; default
	// DefaultTagFields (Surrogate-Key, Cache-Tag).
	TagFields []string
	// ExposeTags keeps the purge tag fields (TagFields) in responses sent
	// to clients. Default false: they are removed, since the origin meant
	// them for the cache.
	ExposeTags bool
}

// Rule overrides the RFC for request paths that start with Prefix.
type Rule struct {
	// Prefix is the path prefix, e.g. "/static/". Must start with "/".
	Prefix string
	// TTL, when > 0, forces this freshness lifetime on storable responses.
	TTL time.Duration
	// Bypass makes cellar never look up or store responses under Prefix.
	Bypass bool
	// IgnoreNoCache ignores the request's no-cache, Pragma: no-cache and
	// max-age=0.
	IgnoreNoCache bool
}

// EnsureDefaults fills zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.HeuristicFraction == 0 {
		o.HeuristicFraction = 0.1
	}
	if o.HeuristicMax == 0 {
		o.HeuristicMax = 24 * time.Hour
	}
	if len(o.Targets) == 0 {
		o.Targets = []string{"CDN-Cache-Control"}
	}
	if len(o.TagFields) == 0 {
		o.TagFields = DefaultTagFields
	}
}

// Validate reports every invalid field at once, naming the field, its value
// and the rule it breaks.
func (o *Options) Validate() error {
	var errs []error
	bad := func(field string, value any, rule string) {
		errs = append(errs, fmt.Errorf("%s = %v: %s", field, value, rule))
	}
	if !(o.HeuristicFraction > 0 && o.HeuristicFraction <= 1) || math.IsNaN(o.HeuristicFraction) {
		bad("HeuristicFraction", o.HeuristicFraction, "must be in (0, 1]")
	}
	if o.HeuristicMax < 0 {
		bad("HeuristicMax", o.HeuristicMax, "must not be negative")
	}
	if o.Cookies < CookiesNever || o.Cookies > CookiesAlways {
		bad("Cookies", o.Cookies, "must be CookiesNever, CookiesExplicit or CookiesAlways")
	}
	if o.DefaultTTL < 0 {
		bad("DefaultTTL", o.DefaultTTL, "must not be negative")
	}
	if o.StaleWhileRevalidate < 0 {
		bad("StaleWhileRevalidate", o.StaleWhileRevalidate, "must not be negative")
	}
	if o.StaleIfError < 0 {
		bad("StaleIfError", o.StaleIfError, "must not be negative")
	}
	seen := map[string]bool{}
	for i, f := range o.TagFields {
		if !httpheader.IsToken(f) {
			bad(fmt.Sprintf("TagFields[%d]", i), fmt.Sprintf("%q", f), "must be a field name (token)")
		}
	}
	for i, t := range o.Targets {
		c := textproto.CanonicalMIMEHeaderKey(t)
		switch {
		case !httpheader.IsToken(t):
			bad(fmt.Sprintf("Targets[%d]", i), fmt.Sprintf("%q", t), "must be a field name (token)")
		case c == "Cache-Control" || c == "Surrogate-Control":
			bad(fmt.Sprintf("Targets[%d]", i), fmt.Sprintf("%q", t), "must not be Cache-Control or Surrogate-Control")
		case seen[c]:
			bad(fmt.Sprintf("Targets[%d]", i), fmt.Sprintf("%q", t), "is listed twice")
		}
		seen[c] = true
	}
	for i, r := range o.Rules {
		name := fmt.Sprintf("Rules[%d] (prefix %q)", i, r.Prefix)
		if !strings.HasPrefix(r.Prefix, "/") {
			bad(name+".Prefix", fmt.Sprintf("%q", r.Prefix), `must start with "/"`)
		}
		if r.TTL < 0 {
			bad(name+".TTL", r.TTL, "must not be negative")
		}
		if r.Bypass && (r.TTL > 0 || r.IgnoreNoCache) {
			bad(name+".Bypass", r.Bypass, "cannot be combined with TTL or IgnoreNoCache")
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidOptions, errors.Join(errs...))
}

// Policy applies RFC 9111 to requests and responses. It is safe for
// concurrent use.
type Policy struct {
	opts    Options
	targets []string // canonical names of Options.Targets
	// tagFields are the canonical names of Options.TagFields.
	tagFields []string
	// private is the set of fields aimed only at cellar: targets,
	// Surrogate-Control and the internal forced-TTL and encodings fields.
	private map[string]bool
}

// New returns a Policy for opts after EnsureDefaults and Validate.
func New(opts Options) (*Policy, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.Rules = append([]Rule(nil), opts.Rules...)
	p := &Policy{opts: opts, private: map[string]bool{
		surrogateControl: true,
		forcedTTLField:   true,
		EncodingsField:   true,
	}}
	for _, t := range opts.Targets {
		c := textproto.CanonicalMIMEHeaderKey(t)
		p.targets = append(p.targets, c)
		if c != cdnCacheControl || opts.StripCDNCacheControl {
			p.private[c] = true
		}
	}
	for _, f := range opts.TagFields {
		p.tagFields = append(p.tagFields, textproto.CanonicalMIMEHeaderKey(f))
	}
	if !opts.ExposeTags {
		for _, f := range p.tagFields {
			p.private[f] = true
		}
	}
	return p, nil
}

// Options returns the options in effect, defaults filled in.
func (p *Policy) Options() Options { return p.opts }

// rule returns the first rule whose prefix matches the request path, or nil.
func (p *Policy) rule(r *http.Request) *Rule {
	if len(p.opts.Rules) == 0 || r == nil || r.URL == nil {
		return nil
	}
	path := r.URL.Path
	if path == "" {
		path = "/"
	}
	for i := range p.opts.Rules {
		if strings.HasPrefix(path, p.opts.Rules[i].Prefix) {
			return &p.opts.Rules[i]
		}
	}
	return nil
}

// CookiePolicy says when a stored Set-Cookie field is served from cache to
// clients other than the one whose request fetched the response.
type CookiePolicy int

const (
	// CookiesNever never serves it from cache, so one client's cookie
	// never reaches another (as most CDNs do). The default.
	CookiesNever CookiePolicy = iota
	// CookiesExplicit serves it when the origin gave the response an
	// explicit lifetime for shared caches (s-maxage, max-age or Expires,
	// in a targeted field, Surrogate-Control or Cache-Control): RFC 9111
	// stores and reuses every end-to-end field, and an origin that wants
	// the cookie kept back says no-cache="Set-Cookie" or
	// private="Set-Cookie" (§5.2.2.4, §5.2.2.7). This is what the HTTP
	// caching conformance suite expects. A response cached on heuristic
	// freshness (§4.2.2), DefaultTTL or a rule TTL is served without it:
	// the origin never asked for it to be shared.
	CookiesExplicit
	// CookiesAlways serves it with every response served from cache.
	CookiesAlways
)

// ParseCookiePolicy reads "never" (or "false", or empty: the default),
// "explicit" or "always" (or "true").
func ParseCookiePolicy(s string) (CookiePolicy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "never", "false", "":
		return CookiesNever, nil
	case "explicit":
		return CookiesExplicit, nil
	case "always", "true":
		return CookiesAlways, nil
	}
	return 0, fmt.Errorf("cache: cookie policy %q: want explicit, never or always", s)
}

// String returns the policy's name, as ParseCookiePolicy reads it.
func (c CookiePolicy) String() string {
	switch c {
	case CookiesExplicit:
		return "explicit"
	case CookiesNever:
		return "never"
	case CookiesAlways:
		return "always"
	}
	return fmt.Sprintf("CookiePolicy(%d)", int(c))
}
