package cache

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// overrideField records, in a stored header, what a rule or
// Options.StatusTTL decided for the response when it was stored, so that
// a hit applies it without the request: "fallback=N" (the lifetime when
// the response has no explicit freshness, from StatusTTL), "grace=N"
// and "keep=N" (the stale-while-revalidate and stale-if-error windows
// that replace the response's) and "ignore-no-cache" (the origin's
// no-cache is ignored), N in seconds. It is never taken from an origin's
// response and never sent to a client.
const overrideField = "Cellar-Override"

// internalField reports the fields that cellar itself keeps in a stored
// header: an origin's response never sets them.
func internalField(k string) bool {
	return k == forcedTTLField || k == overrideField || k == EncodingsField
}

// statusTTLs is a compiled StatusTTL map: exact codes, then classes.
type statusTTLs struct {
	code  map[int]time.Duration
	class [10]time.Duration
	has   [10]bool
}

// lookup returns the TTL for status, if one is configured.
func (s *statusTTLs) lookup(status int) (time.Duration, bool) {
	if d, ok := s.code[status]; ok {
		return d, true
	}
	if c := status / 100; c >= 1 && c <= 9 && s.has[c] {
		return s.class[c], true
	}
	return 0, false
}

// parseStatusKey reads "404" (code) or "5xx" (class).
func parseStatusKey(k string) (code, class int, ok bool) {
	k = strings.ToLower(strings.TrimSpace(k))
	if len(k) == 3 && strings.HasSuffix(k, "xx") && k[0] >= '1' && k[0] <= '9' {
		return 0, int(k[0] - '0'), true
	}
	n, err := strconv.Atoi(k)
	if err != nil || n < 100 || n > 999 {
		return 0, 0, false
	}
	return n, 0, true
}

func compileStatusTTL(m map[string]time.Duration) statusTTLs {
	var s statusTTLs
	for k, d := range m {
		code, class, ok := parseStatusKey(k)
		switch {
		case !ok:
		case class > 0:
			s.class[class], s.has[class] = d, true
		default:
			if s.code == nil {
				s.code = map[int]time.Duration{}
			}
			s.code[code] = d
		}
	}
	return s
}

func validateStatusTTL(name string, m map[string]time.Duration) []error {
	var errs []error
	for k, d := range m {
		if _, _, ok := parseStatusKey(k); !ok {
			errs = append(errs, fmt.Errorf("%s[%q]: must be a status code such as 404 or a class such as 5xx", name, k))
		}
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s[%q] = %v: must not be negative", name, k, d))
		}
	}
	return errs
}

// statusTTL is the StatusTTL of a response with status to a request that
// matched rule i (-1: none): the rule's entry, else the Options'.
func (p *Policy) statusTTL(i, status int) (time.Duration, bool) {
	if i >= 0 {
		if d, ok := p.ruleStatusTTL[i].lookup(status); ok {
			return d, true
		}
	}
	return p.statusTable.lookup(status)
}

// explicitFreshness reports whether cc (and Expires, when Cache-Control
// governs) give the response an explicit lifetime (RFC 9111 §4.2.1).
func explicitFreshness(cc *respCC, viaCC bool, h http.Header) bool {
	if cc.sMaxAge >= 0 || cc.maxAge >= 0 {
		return true
	}
	_, expires := h["Expires"]
	return viaCC && expires
}

// override is the parsed overrideField of a stored header. Durations are
// -1 when absent.
type override struct {
	fallback, grace, keep int64
	ignoreNoCache         bool
}

func parseOverride(h http.Header) (o override, ok bool) {
	v, ok := h[overrideField]
	if !ok || len(v) == 0 {
		return o, false
	}
	o = override{fallback: -1, grace: -1, keep: -1}
	for _, part := range strings.Split(v[0], ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			n = -1
		}
		switch name {
		case "fallback":
			o.fallback = n
		case "grace":
			o.grace = n
		case "keep":
			o.keep = n
		case "ignore-no-cache":
			o.ignoreNoCache = true
		}
	}
	return o, true
}

// metaControl is control for a stored header: the governing directives
// with the stored overrides applied.
func (p *Policy) metaControl(h http.Header) (cc respCC, viaCC bool, ov override) {
	cc, viaCC = p.control(h)
	ov, ok := parseOverride(h)
	if !ok {
		return cc, viaCC, override{fallback: -1, grace: -1, keep: -1}
	}
	if ov.grace >= 0 {
		cc.swr = ov.grace
	}
	if ov.keep >= 0 {
		cc.sie = ov.keep
	}
	if ov.ignoreNoCache {
		cc.noCache = false
	}
	return cc, viaCC, ov
}

// overrideFor returns the overrideField value for a response with status
// and directives cc to a request matching rule i (rl), or "".
func (p *Policy) overrideFor(i int, rl *Rule, status int, cc *respCC, viaCC bool, h http.Header) string {
	var parts []string
	if !explicitFreshness(cc, viaCC, h) {
		if d, ok := p.statusTTL(i, status); ok && d > 0 {
			parts = append(parts, "fallback="+strconv.FormatInt(int64(d/time.Second), 10))
		}
	}
	if rl != nil {
		if rl.Grace > 0 {
			parts = append(parts, "grace="+strconv.FormatInt(int64(rl.Grace/time.Second), 10))
		}
		if rl.Keep > 0 {
			parts = append(parts, "keep="+strconv.FormatInt(int64(rl.Keep/time.Second), 10))
		}
		if rl.IgnoreOriginNoCache && cc.noCache {
			parts = append(parts, "ignore-no-cache")
		}
	}
	return strings.Join(parts, ", ")
}

// StripSetCookie reports whether r's rule strips Set-Cookie from the
// origin's responses (Rule.StripSetCookie).
func (p *Policy) StripSetCookie(r *http.Request) bool {
	rl := p.rule(r)
	return rl != nil && rl.StripSetCookie
}
