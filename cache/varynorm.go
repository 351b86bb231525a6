package cache

import (
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// VaryNormalize reduces the request fields that responses commonly vary on
// to the few values the origin serves, so that the cache keeps one variant
// per language or media type instead of one per string that browsers send
// (RFC 9111 §4.1 allows normalizing before matching when the semantics are
// the same). Accept-Encoding is negotiated separately (package compress).
type VaryNormalize struct {
	// AcceptLanguage lists the language tags the origin serves, e.g.
	// ["en", "fr", "de"]; when set, a request's Accept-Language is reduced
	// to the one it prefers (RFC 4647 §3.4 lookup: "en-US" matches "en"),
	// or to "" when it accepts none of them. Default none: kept as sent.
	AcceptLanguage []string
	// Accept lists the media types the origin serves, in its order of
	// preference, e.g. ["image/avif", "image/webp", "image/jpeg"]; when
	// set, a request's Accept is reduced to the one with the highest
	// quality for the client (ties go to the earlier one), or "" when it
	// accepts none. Default none: kept as sent.
	Accept []string
}

func (v *VaryNormalize) validate() []error {
	var errs []error
	for i, l := range v.AcceptLanguage {
		if l == "" || strings.ContainsAny(l, " ,;*") {
			errs = append(errs, fmt.Errorf("VaryNormalize.AcceptLanguage[%d] = %q: must be a language tag such as en or pt-BR", i, l))
		}
	}
	for i, t := range v.Accept {
		if mt, _, err := mime.ParseMediaType(t); err != nil || !strings.Contains(mt, "/") || strings.Contains(mt, "*") {
			errs = append(errs, fmt.Errorf("VaryNormalize.Accept[%d] = %q: must be a media type such as image/webp", i, t))
		}
	}
	return errs
}

// NormalizeVaried returns h with Accept-Language and Accept reduced as
// Options.VaryNormalize says, or h itself when nothing changes. h is
// not modified.
func (p *Policy) NormalizeVaried(h http.Header) http.Header {
	vn := &p.opts.VaryNormalize
	if len(vn.AcceptLanguage) == 0 && len(vn.Accept) == 0 {
		return h
	}
	var out http.Header
	set := func(name, v string) {
		if out == nil {
			out = h.Clone()
		}
		if v == "" {
			delete(out, name)
			return
		}
		out[name] = []string{v}
	}
	if len(vn.AcceptLanguage) > 0 {
		if v, ok := h["Accept-Language"]; ok {
			set("Accept-Language", bestLanguage(strings.Join(v, ","), vn.AcceptLanguage))
		}
	}
	if len(vn.Accept) > 0 {
		if v, ok := h["Accept"]; ok {
			set("Accept", bestMediaType(strings.Join(v, ","), vn.Accept))
		}
	}
	if out == nil {
		return h
	}
	return out
}

// weighted is one element of an Accept-style list.
type weighted struct {
	value string
	q     float64
}

// parseWeighted splits "a;q=0.5, b" into values (lowercased, parameters
// other than q dropped) and qualities (RFC 9110 §12.4.2; default 1).
func parseWeighted(s string) []weighted {
	var out []weighted
	for _, part := range strings.Split(s, ",") {
		v, params, _ := strings.Cut(part, ";")
		v = strings.ToLower(strings.TrimSpace(v))
		if v == "" {
			continue
		}
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil && f >= 0 && f <= 1 {
					q = f
				}
			}
		}
		out = append(out, weighted{v, q})
	}
	return out
}

// bestLanguage is the served tag the Accept-Language value prefers: the
// highest-quality range that a served tag matches by RFC 4647 lookup
// (the range, or the range with subtags removed from the end), "*" for
// the first served tag; among ranges of equal quality the earlier served
// tag wins (RFC 9110 §12.4.2 gives equal weights no order, so "en, de"
// and "de, en" are one variant); "" when none matches.
func bestLanguage(accept string, served []string) string {
	best, bestQ := -1, 0.0
	for _, w := range parseWeighted(accept) {
		if w.q == 0 || w.q < bestQ {
			continue
		}
		i := -1
		if w.value == "*" {
			i = 0
		}
		for r := w.value; r != "" && i < 0; {
			if i = indexFold(served, r); i >= 0 {
				break
			}
			j := strings.LastIndexByte(r, '-')
			if j < 0 {
				break
			}
			r = r[:j]
		}
		if i >= 0 && (w.q > bestQ || i < best) {
			best, bestQ = i, w.q
		}
	}
	if best < 0 {
		return ""
	}
	return served[best]
}

// bestMediaType is the served type with the highest quality for the
// Accept value (exact type over type/* over */*), earlier served types
// winning ties; "" when the client accepts none.
func bestMediaType(accept string, served []string) string {
	ranges := parseWeighted(accept)
	best, bestQ := "", 0.0
	for _, t := range served {
		mt := strings.ToLower(t)
		if i := strings.IndexByte(mt, ';'); i >= 0 {
			mt = strings.TrimSpace(mt[:i])
		}
		major, _, _ := strings.Cut(mt, "/")
		q, spec := 0.0, -1
		for _, r := range ranges {
			rv := r.value
			s := -1
			switch {
			case rv == mt:
				s = 2
			case rv == major+"/*":
				s = 1
			case rv == "*/*":
				s = 0
			}
			if s > spec {
				q, spec = r.q, s
			}
		}
		if q > bestQ {
			best, bestQ = t, q
		}
	}
	return best
}

func indexFold(list []string, s string) int {
	for i, v := range list {
		if strings.EqualFold(v, s) {
			return i
		}
	}
	return -1
}
