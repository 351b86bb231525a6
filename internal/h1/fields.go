package h1

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
)

// Fields are response header fields written once in the form the engine
// sends them, for any number of responses to send as they are: a cache
// makes them once per stored response, so that a hit neither copies the
// fields into its header map nor has each one checked and written again
// (PresetFields). Immutable.
type Fields struct {
	wire  []byte // the field lines, sorted by name, as appendField writes them
	date  bool   // a Date field: the engine adds none
	ctype bool   // a Content-Type field: the engine sniffs none
}

// NewFields returns h's fields as Fields, or nil when h has one of the
// fields the engine decides the framing, the connection or the trailers
// from (Content-Length, Transfer-Encoding, Connection, Trailer and
// http.TrailerPrefix ones): those must go through the header map. The
// fields are written as the header map's would be (appendField: a name
// that is not a token is left out, values are trimmed and cannot split
// the response), in the order of their names.
func NewFields(h http.Header) *Fields {
	f := &Fields{}
	names := make([]string, 0, len(h))
	for k := range h {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Connection", "Trailer":
			return nil
		case "Date":
			f.date = true
		case "Content-Type":
			f.ctype = true
		}
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return nil
		}
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		f.wire = appendField(f.wire, k, h[k])
	}
	f.wire = slices.Clip(f.wire)
	return f
}

// Has reports whether f has a field of that name (canonical, as in an
// http.Header). It reads the lines (a value holds no CR or LF), so that
// Fields keep nothing but their bytes.
func (f *Fields) Has(name string) bool {
	for rest := f.wire; len(rest) > 0; {
		line, after, _ := bytes.Cut(rest, crlf)
		if k, _, _ := bytes.Cut(line, colon); string(k) == name {
			return true
		}
		rest = after
	}
	return false
}

var crlf, colon = []byte("\r\n"), []byte(":")

// PresetFields has the response send f's fields in its header, before
// those of its header map, with which they are not merged: the map must
// not hold fields of the same names, but for lines to add after f's (a
// handler that changes or removes one of f's fields must not use f). It
// reports false, and does nothing, when the header is already out. A
// ResponseWriter that wraps the engine's and edits the header map passes
// the call on only when its edits leave f's fields alone.
func (w *response) PresetFields(f *Fields) bool {
	if w.committed || w.hijacked {
		return false
	}
	w.preset = f
	return true
}
