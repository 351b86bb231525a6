package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/cellar-cache/cellar/internal/h1"
)

// HeaderOps change the header fields of every response cellar sends to
// clients (from cache, from the origin, or its own errors), such as the
// security fields Strict-Transport-Security, X-Content-Type-Options and
// X-Frame-Options. Remove goes first, then Set (replacing any value),
// then Add (appending a field line).
type HeaderOps struct {
	Set    map[string]string
	Add    map[string]string
	Remove []string
}

func (o HeaderOps) empty() bool { return len(o.Set) == 0 && len(o.Add) == 0 && len(o.Remove) == 0 }

// Validate reports every field name that is not a token and every value
// that is not a valid field value, at once.
func (o HeaderOps) Validate() error {
	var errs []error
	check := func(op, name, value string, hasValue bool) {
		if !validFieldName(name) {
			errs = append(errs, fmt.Errorf("%s %q: not a valid field name", op, name))
		}
		if hasValue && !validFieldValue(value) {
			errs = append(errs, fmt.Errorf("%s %s: value %q: has a control character", op, name, value))
		}
	}
	for k, v := range o.Set {
		check("set", k, v, true)
	}
	for k, v := range o.Add {
		check("add", k, v, true)
	}
	for _, k := range o.Remove {
		check("remove", k, "", false)
	}
	return errors.Join(errs...)
}

// headerEdit is HeaderOps ready to apply: canonical names.
type headerEdit struct {
	set, add [][2]string
	remove   []string
}

func newHeaderEdit(o HeaderOps) *headerEdit {
	if o.empty() {
		return nil
	}
	e := &headerEdit{}
	for _, k := range o.Remove {
		e.remove = append(e.remove, http.CanonicalHeaderKey(strings.TrimSpace(k)))
	}
	for k, v := range o.Set {
		e.set = append(e.set, [2]string{http.CanonicalHeaderKey(k), v})
	}
	for k, v := range o.Add {
		e.add = append(e.add, [2]string{http.CanonicalHeaderKey(k), v})
	}
	return e
}

func (e *headerEdit) apply(h http.Header) {
	for _, k := range e.remove {
		delete(h, k)
	}
	for _, kv := range e.set {
		h[kv[0]] = []string{kv[1]}
	}
	for _, kv := range e.add {
		h[kv[0]] = append(h[kv[0]], kv[1])
	}
}

// headerWriter applies header edits to a response when its final status
// is written.
type headerWriter struct {
	http.ResponseWriter
	edits []*headerEdit // in order: global, then the site's
	done  bool
}

func (w *headerWriter) edit() {
	if w.done {
		return
	}
	w.done = true
	h := w.ResponseWriter.Header()
	for _, e := range w.edits {
		e.apply(h)
	}
}

func (w *headerWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.edit()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *headerWriter) Write(p []byte) (int, error) {
	w.edit()
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the real writer (Flush,
// Hijack, deadlines).
func (w *headerWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// PresetFields passes ready-made header fields on (prepared.go) when no
// edit removes or replaces one of them: an added line goes after them, as
// it would after the values in the header map.
func (w *headerWriter) PresetFields(f *h1.Fields) bool {
	for _, e := range w.edits {
		for _, k := range e.remove {
			if f.Has(k) {
				return false
			}
		}
		for _, kv := range e.set {
			if f.Has(kv[0]) {
				return false
			}
		}
	}
	return presetFields(w.ResponseWriter, f)
}

// validFieldName reports whether s is a token (RFC 9110 §5.1, §5.6.2).
func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// validFieldValue reports whether s has no control character other than
// horizontal tab (RFC 9110 §5.5).
func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
