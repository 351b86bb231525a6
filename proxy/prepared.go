package proxy

import (
	"hash/maphash"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/compress"
	"github.com/cellar-cache/cellar/internal/h1"
	"github.com/cellar-cache/cellar/store"
)

// headerField is one response header field ready to set: its canonical
// name and its values, shared and with no spare capacity (an append by a
// later writer copies them).
type headerField struct {
	name   string
	values []string
}

// fieldList is a response header ready to send: as a list, which a hit
// copies into the response's header map without filtering or
// canonicalising anything, and in the HTTP/1.1 engine's wire form, which
// the engine sends as it is (sendFields). Immutable once made.
type fieldList struct {
	fields []headerField
	wire   *h1.Fields // nil: the fields go through the header map (h1.NewFields)
}

// listOf is h as a fieldList, in no particular order.
func listOf(h http.Header) fieldList {
	l := make([]headerField, 0, len(h))
	for k, v := range h {
		l = append(l, headerField{k, v[:len(v):len(v)]})
	}
	return fieldList{fields: l, wire: h1.NewFields(h)}
}

// setIn sets every field of l in h.
func (l fieldList) setIn(h http.Header) {
	for _, f := range l.fields {
		h[f.name] = f.values
	}
}

// sendIn has w send l's fields: preset in the HTTP/1.1 engine's response
// (the wrappers between pass the call on, fieldPresetter) when w has one,
// else set in w's header map. Nothing may change those fields afterwards;
// fields may still be added.
func (l fieldList) sendIn(w http.ResponseWriter) {
	if l.wire == nil || !presetFields(w, l.wire) {
		l.setIn(w.Header())
	}
}

// fieldPresetter is a ResponseWriter that can send ready-made header
// fields besides those of its map: the HTTP/1.1 engine's, and the wrappers
// around it that pass the call on (PresetFields reports false when they do
// not: a wrapper that would edit one of the fields).
type fieldPresetter interface {
	PresetFields(f *h1.Fields) bool
}

// presetFields presets f in w when w can take them, and reports whether
// it did.
func presetFields(w http.ResponseWriter, f *h1.Fields) bool {
	p, ok := w.(fieldPresetter)
	return ok && p.PresetFields(f)
}

// get returns the first value of the field name, or "".
func (l fieldList) get(name string) string {
	for _, f := range l.fields {
		if f.name == name && len(f.values) > 0 {
			return f.values[0]
		}
	}
	return ""
}

// with returns a copy of l where the field name has values (nil: without
// the field).
func (l fieldList) with(name string, values []string) fieldList {
	out := make([]headerField, 0, len(l.fields)+1)
	for _, f := range l.fields {
		if f.name != name {
			out = append(out, f)
		}
	}
	if values != nil {
		out = append(out, headerField{name, values[:len(values):len(values)]})
	}
	h := make(http.Header, len(out))
	for _, f := range out {
		h[f.name] = f.values
	}
	return fieldList{fields: out, wire: h1.NewFields(h)}
}

// preparedHit is what every hit of one stored response sends, worked out
// once and kept with the memory-resident object (store.Object.SetMemo), so
// that a hit neither ranges over nor copies the stored header map: the
// fields a client may see (Policy.ServeHeader's choice, cellar's Via member,
// Vary: Accept-Encoding when the response is offered in several codings)
// as a fieldList (a list, and the HTTP/1.1 engine's wire form); the facts
// pickEncoding decides from (the stored body's coding, the recorded
// variants and their keys, whether the response is worth compressing);
// and, made on first use, the field list of each coding variant.
// Content-Length is not in the lists of a response with a body (the
// served body's size gives it), nor are Age and Cache-Status (each hit
// sets its own). Immutable once made, but for the variant lists, which are
// set at most once each.
type preparedHit struct {
	gen    uint64     // hitPreparer.gen of the server that made it
	status int        // the stored status code
	meta   cache.Meta // the object's, with the server's policy's memo (hitMeta)
	fields fieldList  // the response as stored
	// src is the content coding of the stored body (codings.go's
	// storedCoding): identity, or the origin's. It is "" when the response
	// is served as stored with no coding decision: not a 200, or a coding
	// cellar cannot decode.
	src string
	// offer: clients may get another coding than the stored one (variants
	// are recorded, may be made, or the body is encoded); else the stored
	// body is always served as identity.
	offer bool
	// avail are the codings a client may be offered besides identity:
	// src first when it is not identity, then the recorded variants'.
	// availKey joins them, availHash is its hash (hitPreparer.choose).
	avail     []string
	availKey  string
	availHash uint64
	// token names the job that made the recorded variants ("": none
	// recorded); keys[i] is the key of the variant of avail[i].
	token string
	keys  []string
	// variants[2*i] is the field list of the fast variant of avail[i],
	// variants[2*i+1] of the best-level one (whose entity tag differs).
	variants []atomic.Pointer[fieldList]
}

// hitPreparer makes and keeps preparedHits for one Server, and caches
// content coding decisions.
type hitPreparer struct {
	// gen tells this server's preparedHits from those of a server that
	// replaced it or that it replaced (a reload): each made their own
	// from their own policy.
	gen     uint64
	choices [256]atomic.Pointer[codingChoice]
}

// codingChoice is compress.Negotiate's answer for one Accept-Encoding
// field value and one list of available codings.
type codingChoice struct {
	ae, avail string
	coding    string
}

var (
	prepGens  atomic.Uint64
	choiceSed = maphash.MakeSeed()
)

func newHitPreparer() *hitPreparer {
	return &hitPreparer{gen: prepGens.Add(1)}
}

// prepared returns the preparedHit of obj: the one kept with it, when this
// server made it, else a new one (kept with obj when obj is in memory).
func (s *Server) prepared(obj *store.Object) *preparedHit {
	if p, ok := obj.Memo().(*preparedHit); ok && p.gen == s.prep.gen {
		return p
	}
	p := s.prepare(obj)
	obj.SetMemo(p)
	return p
}

// hitMeta is obj's Meta to evaluate (Policy.Evaluate): the prepared copy,
// whose memo this server's policy made, even when obj was read from disk
// or its own memo is another policy's.
func (s *Server) hitMeta(obj *store.Object) *cache.Meta {
	return &s.prepared(obj).meta
}

// prepare works out the preparedHit of obj.
func (s *Server) prepare(obj *store.Object) *preparedHit {
	m := &obj.Meta
	p := &preparedHit{gen: s.prep.gen, status: m.Status, meta: s.policy.Memoized(*m)}
	h := make(http.Header, len(m.Header)+2)
	s.policy.ServeHeader(h, m)
	if bodyAllowed(m.Status) {
		delete(h, "Content-Length")
	}
	// Each hit sets its own.
	delete(h, "Age")
	delete(h, "Cache-Status")
	s.addVia(h)
	if m.Status == http.StatusOK {
		p.src = storedCoding(m.Header["Content-Encoding"])
	}
	var list string
	if p.src != "" {
		if field := m.Header[cache.EncodingsField]; len(field) > 0 {
			list, p.token = parseEncodings(field[0])
			p.offer = true
		} else {
			p.offer = p.src != compress.Identity || s.opts.Compress.Compressible(m.Header, obj.Size)
		}
	}
	if p.offer {
		addVaryAcceptEncoding(h)
		if p.src != compress.Identity {
			p.avail = append(p.avail, p.src)
		}
		for c := range strings.FieldsSeq(list) {
			if c != p.src && len(p.avail) <= len(madeCodings) && !slices.Contains(p.avail, c) {
				p.avail = append(p.avail, c)
			}
		}
		p.availKey = strings.Join(p.avail, " ")
		p.availHash = maphash.String(choiceSed, p.availKey)
		if p.token != "" {
			p.keys = make([]string, len(p.avail))
			for i, c := range p.avail {
				if c != p.src {
					p.keys[i] = cache.EncodingKey(obj.Key, c)
				}
			}
			p.variants = make([]atomic.Pointer[fieldList], 2*len(p.avail))
		}
	}
	p.fields = listOf(h)
	return p
}

// addVia adds cellar's member to the Via field of h (RFC 9110 §7.6.3).
func (s *Server) addVia(h http.Header) {
	if via := h["Via"]; len(via) > 0 {
		h["Via"] = append(via[:len(via):len(via)], s.responseVia)
	} else {
		h["Via"] = s.viaValues
	}
}

// variant returns the field list of the stored variant v, of coding
// avail[i] (made once per pass, fast or best).
func (p *preparedHit) variant(i int, v *store.Object) fieldList {
	best := len(v.Meta.Header[codingPassField]) > 0
	slot := &p.variants[2*i]
	suffix := p.avail[i]
	if best {
		slot = &p.variants[2*i+1]
		suffix += "-best" // other bytes than the fast pass's
	}
	if l := slot.Load(); l != nil {
		return *l
	}
	l := p.coded(p.avail[i], suffix)
	slot.Store(&l)
	return l
}

// coded is the field list of the response in coding: p's fields with its
// Content-Encoding (none for identity, the decoded form of an encoded body)
// and an entity tag made distinct by suffix (RFC 9110 §8.8.3: with "br",
// "abc" becomes "abc-br" and W/"abc" becomes W/"abc-br"). A malformed tag
// is dropped rather than shared between representations.
func (p *preparedHit) coded(coding, suffix string) fieldList {
	var l fieldList
	if coding == compress.Identity {
		l = p.fields.with("Content-Encoding", nil)
	} else {
		l = p.fields.with("Content-Encoding", []string{coding})
	}
	if et := l.get("Etag"); et != "" {
		if t, ok := codingETag(et, suffix); ok {
			l = l.with("Etag", []string{t})
		} else {
			l = l.with("Etag", nil)
		}
	}
	return l
}

// variantKey is the key of the variant of obj in coding.
func (p *preparedHit) variantKey(obj *store.Object, coding string) (string, int) {
	if i := slices.Index(p.avail, coding); i >= 0 && p.keys[i] != "" {
		return p.keys[i], i
	}
	return cache.EncodingKey(obj.Key, coding), -1
}

// choose is compress.Negotiate(ae, p.avail, order), remembered by
// Accept-Encoding value and available codings in a direct-mapped table of
// immutable entries (two that share a slot take turns).
func (hp *hitPreparer) choose(ae []string, p *preparedHit, order []string) string {
	if len(ae) != 1 {
		c, _ := compress.Negotiate(ae, p.avail, order)
		return c
	}
	slot := &hp.choices[(maphash.String(choiceSed, ae[0])^p.availHash)%uint64(len(hp.choices))]
	if e := slot.Load(); e != nil && e.ae == ae[0] && e.avail == p.availKey {
		return e.coding
	}
	c, _ := compress.Negotiate(ae, p.avail, order)
	if len(ae[0]) <= 256 {
		slot.Store(&codingChoice{ae: strings.Clone(ae[0]), avail: p.availKey, coding: c})
	}
	return c
}
