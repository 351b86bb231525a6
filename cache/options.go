package cache

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/cellar-cache/cellar/internal/httpheader"
	"github.com/cellar-cache/cellar/internal/intern"
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
	// Personal says which responses to personalised exchanges are stored
	// and shared: those to requests with Cookie or Authorization, and
	// those that carry Set-Cookie. Default PersonalSafe.
	Personal PersonalPolicy
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

	// Key shapes the primary cache key (see KeyOptions); a Rule's Key
	// replaces it for the rule's requests. Default: the target URI.
	Key KeyOptions
	// ClientNoCache says what a request's no-cache, Pragma: no-cache and
	// max-age do to a stored response. Default NoCacheIgnore, as Varnish,
	// nginx and most CDNs do: any client could otherwise send every
	// request to the origin.
	ClientNoCache ClientNoCache
	// StatusTTL is the freshness lifetime by status code of responses
	// that carry no explicit freshness (s-maxage, max-age, Expires),
	// keyed "404" or by class "5xx" (an exact code wins over its class).
	// A zero duration keeps such responses out of the cache. It comes
	// before DefaultTTL and the heuristic of §4.2.2. Default none.
	StatusTTL map[string]time.Duration
	// VaryNormalize reduces Accept-Language and Accept to the values the
	// origin serves before they select a Vary variant. Default: as sent.
	VaryNormalize VaryNormalize
}

// Rule overrides the RFC for request paths that start with Prefix (and,
// when Hosts is set, whose Host is one of Hosts). A zero field inherits
// the Options' setting.
type Rule struct {
	// Prefix is the path prefix, e.g. "/static/". Must start with "/".
	Prefix string
	// Hosts, when set, limits the rule to requests for these hosts
	// (lowercase; the port is ignored; "*.example.com" matches its
	// subdomains): a rule per site.
	Hosts []string
	// TTL, when > 0, forces this freshness lifetime on storable responses.
	TTL time.Duration
	// Bypass makes cellar never look up or store responses under Prefix.
	Bypass bool
	// IgnoreNoCache is ClientNoCache: NoCacheIgnore (kept for old
	// configurations).
	IgnoreNoCache bool
	// ClientNoCache replaces Options.ClientNoCache; zero inherits it.
	ClientNoCache ClientNoCache
	// Key replaces Options.Key for the rule's requests when set.
	Key *KeyOptions
	// StatusTTL entries replace Options.StatusTTL's for the same code or
	// class.
	StatusTTL map[string]time.Duration
	// Grace, when > 0, replaces the response's stale-while-revalidate
	// window (RFC 5861 §3).
	Grace time.Duration
	// Keep, when > 0, replaces the response's stale-if-error window (RFC
	// 5861 §4).
	Keep time.Duration
	// IgnoreNoCache and IgnorePrivate ignore the origin's no-cache and
	// private response directives: the response is stored and reused as
	// if they were absent. Use them only for an origin known to mark
	// shareable responses wrongly: a private response may hold one user's
	// data, and cellar then serves it to everyone.
	IgnoreOriginNoCache, IgnorePrivate bool
	// StripSetCookie removes Set-Cookie from the origin's response, both
	// from the stored copy and from the response to the client that
	// fetched it.
	StripSetCookie bool
}

// ClientNoCache says how a request's own cache directives (no-cache,
// Pragma: no-cache, max-age) are treated.
type ClientNoCache int

const (
	// NoCacheInherit (zero) takes the setting of the Options (in a Rule)
	// or the default.
	NoCacheInherit ClientNoCache = iota
	// NoCacheIgnore serves a fresh stored response whatever they say.
	NoCacheIgnore
	// NoCacheRevalidate is RFC 9111 §5.2.1.1 and §5.2.1.4: the stored
	// response is validated with the origin (a conditional request when
	// it has validators; a 304 keeps the stored body).
	NoCacheRevalidate
	// NoCacheHonor forwards the request to the origin as a reload,
	// without the stored validators: the origin sends the whole response,
	// which replaces the stored one.
	NoCacheHonor
)

// ParseClientNoCache reads "ignore", "revalidate" or "honor" (empty:
// NoCacheInherit).
func ParseClientNoCache(s string) (ClientNoCache, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return NoCacheInherit, nil
	case "ignore":
		return NoCacheIgnore, nil
	case "revalidate":
		return NoCacheRevalidate, nil
	case "honor", "honour":
		return NoCacheHonor, nil
	}
	return 0, fmt.Errorf("cache: client_no_cache %q: want honor, ignore or revalidate", s)
}

// String returns the setting's name, as ParseClientNoCache reads it.
func (c ClientNoCache) String() string {
	switch c {
	case NoCacheInherit:
		return ""
	case NoCacheIgnore:
		return "ignore"
	case NoCacheRevalidate:
		return "revalidate"
	case NoCacheHonor:
		return "honor"
	}
	return fmt.Sprintf("ClientNoCache(%d)", int(c))
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
	if o.ClientNoCache == NoCacheInherit {
		o.ClientNoCache = NoCacheIgnore
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
	if o.Personal < PersonalSafe || o.Personal > PersonalRFC {
		bad("Personal", o.Personal, "must be PersonalSafe or PersonalRFC")
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
		if r.Grace < 0 {
			bad(name+".Grace", r.Grace, "must not be negative")
		}
		if r.Keep < 0 {
			bad(name+".Keep", r.Keep, "must not be negative")
		}
		if r.ClientNoCache < NoCacheInherit || r.ClientNoCache > NoCacheHonor {
			bad(name+".ClientNoCache", r.ClientNoCache, "must be NoCacheIgnore, NoCacheRevalidate or NoCacheHonor")
		}
		for j, h := range r.Hosts {
			if h == "" || strings.ContainsAny(h, "/: ") {
				bad(fmt.Sprintf("%s.Hosts[%d]", name, j), fmt.Sprintf("%q", h), `must be a host name such as example.com or *.example.com`)
			}
		}
		if r.Key != nil {
			errs = append(errs, r.Key.validate(name+".Key")...)
		}
		errs = append(errs, validateStatusTTL(name+".StatusTTL", r.StatusTTL)...)
	}
	if o.ClientNoCache < NoCacheIgnore || o.ClientNoCache > NoCacheHonor {
		bad("ClientNoCache", o.ClientNoCache, "must be NoCacheIgnore, NoCacheRevalidate or NoCacheHonor")
	}
	errs = append(errs, o.Key.validate("Key")...)
	errs = append(errs, validateStatusTTL("StatusTTL", o.StatusTTL)...)
	errs = append(errs, o.VaryNormalize.validate()...)
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
	// Surrogate-Control and the internal forced-TTL, override and
	// encodings fields.
	private map[string]bool
	// statusTTL is Options.StatusTTL compiled; ruleStatusTTL[i] is
	// Rules[i].StatusTTL's.
	statusTable   statusTTLs
	ruleStatusTTL []statusTTLs
	// hostRules is set when some rule has Hosts.
	hostRules bool
	// keys are the primary keys met lately (Key).
	keys *intern.Table
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
		overrideField:    true,
		EncodingsField:   true,
	}, keys: intern.New(keySlots, maxInternedKey)}
	opts.Key = opts.Key.canonical()
	for i := range opts.Rules {
		if k := opts.Rules[i].Key; k != nil {
			c := k.canonical()
			opts.Rules[i].Key = &c
		}
	}
	p.statusTable = compileStatusTTL(opts.StatusTTL)
	p.ruleStatusTTL = make([]statusTTLs, len(opts.Rules))
	for i, r := range opts.Rules {
		p.ruleStatusTTL[i] = compileStatusTTL(r.StatusTTL)
		p.hostRules = p.hostRules || len(r.Hosts) > 0
	}
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

// rule returns the first rule whose prefix (and hosts) match the request,
// or nil.
func (p *Policy) rule(r *http.Request) *Rule {
	_, rl := p.ruleIndex(r)
	return rl
}

// ruleIndex is rule with the rule's index (-1 for none).
func (p *Policy) ruleIndex(r *http.Request) (int, *Rule) {
	if len(p.opts.Rules) == 0 || r == nil || r.URL == nil {
		return -1, nil
	}
	path := r.URL.Path
	if path == "" {
		path = "/"
	}
	host := ""
	if p.hostRules {
		host = requestHost(r)
	}
	for i := range p.opts.Rules {
		rl := &p.opts.Rules[i]
		if strings.HasPrefix(path, rl.Prefix) && (len(rl.Hosts) == 0 || matchHost(rl.Hosts, host)) {
			return i, rl
		}
	}
	return -1, nil
}

// requestHost is r's host, lowercased, without its port.
func requestHost(r *http.Request) string {
	host := r.Host
	if host == "" && r.URL != nil {
		host = r.URL.Host
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.Trim(host, "[]"))
}

// matchHost reports whether host is one of hosts ("*.example.com" matches
// its subdomains).
func matchHost(hosts []string, host string) bool {
	for _, h := range hosts {
		h = strings.ToLower(h)
		if h == host || (strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:])) {
			return true
		}
	}
	return false
}

// Key returns the primary cache key of r (RequestKey with the key options
// of r's rule, else Options.Key). The proxy stores and looks up under it.
// A primary key without key options, up to maxInternedKey bytes long, is
// the policy's copy when it met the key lately (p.keys): a hot URL's key
// costs no allocation.
func (p *Policy) Key(r *http.Request) string {
	k := &p.opts.Key
	if rl := p.rule(r); rl != nil && rl.Key != nil {
		k = rl.Key
	}
	if !k.IsZero() {
		return RequestKey(r, k)
	}
	scheme, host, path, query, force := primaryParts(r)
	host = dropDefaultPort(scheme, host)
	if keyLen(scheme, host, path, query, force) > maxInternedKey || !isASCII(host) {
		return buildKey(scheme, host, path, query, force)
	}
	var buf [maxInternedKey]byte
	return p.keys.Bytes(appendKey(buf[:0], scheme, host, path, query, force))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// The policy keeps the primary keys it made last, up to keySlots of at
// most maxInternedKey bytes each (about 1 MiB at most).
const (
	keySlots       = 4096
	maxInternedKey = 256
)

// KeyFromURL returns the key that purges and inspection use for the
// absolute URL raw (URLKey with the options of the rule a GET of raw
// matches). It wraps ErrBadURL for a URL that is not absolute http(s).
func (p *Policy) KeyFromURL(raw string) (string, error) {
	ko := &p.opts.Key
	if len(p.opts.Rules) > 0 {
		if r, err := http.NewRequest(http.MethodGet, raw, nil); err == nil {
			if rl := p.rule(r); rl != nil && rl.Key != nil {
				ko = rl.Key
			}
		}
	}
	return URLKey(raw, ko)
}

// clientNoCache is the ClientNoCache setting for a request matching rl.
func (p *Policy) clientNoCache(rl *Rule) ClientNoCache {
	if rl != nil {
		if rl.ClientNoCache != NoCacheInherit {
			return rl.ClientNoCache
		}
		if rl.IgnoreNoCache {
			return NoCacheIgnore
		}
	}
	return p.opts.ClientNoCache
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

// PersonalPolicy says whether responses to personalised exchanges (a
// request with Cookie or Authorization, a response with Set-Cookie) are
// stored for sharing.
type PersonalPolicy int

const (
	// PersonalSafe (the default) shares them only when the origin said
	// explicitly that shared caches may: public, s-maxage, a targeted
	// field (RFC 9213) or Surrogate-Control, or an operator's rule TTL.
	// Heuristic freshness (§4.2.2) and a plain max-age or Expires are not
	// enough, and neither is must-revalidate for Authorization (which
	// RFC 9111 §3.5 allows). A Set-Cookie that the origin dropped from
	// the stored copy (private="Set-Cookie", no-cache="Set-Cookie") or a
	// rule strips does not count. This is what Varnish's built-in policy
	// and nginx do by default: one client's personalised body never
	// reaches another.
	PersonalSafe PersonalPolicy = iota
	// PersonalRFC stores them as RFC 9111 allows: requests with Cookie
	// like any other, Authorization per §3.5, Set-Cookie like any field.
	PersonalRFC
)

// ParsePersonalPolicy reads "safe" (or empty: the default) or "rfc".
func ParsePersonalPolicy(s string) (PersonalPolicy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "safe", "":
		return PersonalSafe, nil
	case "rfc":
		return PersonalRFC, nil
	}
	return 0, fmt.Errorf("cache: cookies %q: want safe or rfc", s)
}

// String returns the policy's name, as ParsePersonalPolicy reads it.
func (c PersonalPolicy) String() string {
	switch c {
	case PersonalSafe:
		return "safe"
	case PersonalRFC:
		return "rfc"
	}
	return fmt.Sprintf("PersonalPolicy(%d)", int(c))
}
