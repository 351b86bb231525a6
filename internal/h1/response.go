package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// response is the http.ResponseWriter of one request; a connection reuses
// its one (a ResponseWriter is valid only during its ServeHTTP call).
type response struct {
	c   *conn
	req *http.Request
	h   http.Header

	status      int
	wroteHeader bool // the final status is chosen
	committed   bool // the header is in the output
	hijacked    bool
	handlerDone bool
	head        bool
	bodyOK      bool  // the status allows a body
	chunked     bool  // the body is sent chunked
	length      int64 // the body's declared length; -1: unknown
	written     int64
	closeAfter  bool
	trailers    bool    // the handler declared trailer fields
	pre         []byte  // body written before the header, while its length is unknown
	fields      []field // commit's list of the fields to write, reused
	preset      *Fields // fields sent before the header map's (PresetFields); nil: none
	wideMap     bool    // h held more than smallHeader fields at the last reset

	dateSec int64
	date    [29]byte
}

// field is one header field of a response, as commit writes it.
type field struct {
	k  string
	vs []string
}

// maxFields is how many fields' room a connection keeps for the next
// response.
const maxFields = 64

var (
	_ http.ResponseWriter = (*response)(nil)
	_ http.Flusher        = (*response)(nil)
	_ http.Hijacker       = (*response)(nil)
	_ io.StringWriter     = (*response)(nil)
)

// smallHeader is how many fields a header map holds in its first group:
// clearing a map costs what it grew to, not what it holds.
const smallHeader = 8

func (w *response) reset(r *http.Request, p *requestParser) {
	// A map grown by a large header is cleared while the responses are
	// large, and replaced by a small one at the first that is not (the
	// responses a cache's hits make with PresetFields hold a few fields).
	switch n := len(w.h); {
	case n > smallHeader:
		clear(w.h)
		w.wideMap = true
	case w.wideMap:
		w.h = make(http.Header, smallHeader)
		w.wideMap = false
	case n > 0:
		clear(w.h)
	}
	w.preset = nil
	w.req = r
	w.status = 0
	w.wroteHeader, w.committed, w.hijacked, w.handlerDone = false, false, false, false
	w.head = r.Method == "HEAD"
	w.bodyOK, w.chunked, w.trailers = false, false, false
	w.length, w.written = -1, 0
	w.closeAfter = r.Close
	w.pre = w.pre[:0]
	c := w.c
	if p.expect {
		c.flush() // the 100 Continue may be written from another goroutine
	}
	if p.expect || c.canContinue.Load() {
		// Only this goroutine sets it; commit cleared it after the
		// last response, so a request without Expect stores nothing.
		c.canContinue.Store(p.expect)
	}
}

func (w *response) Header() http.Header { return w.h }

func (w *response) WriteHeader(code int) {
	if w.hijacked {
		w.c.srv.logf("h1: response.WriteHeader on hijacked connection")
		return
	}
	if w.wroteHeader {
		w.c.srv.logf("h1: superfluous response.WriteHeader call")
		return
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.informational(code)
		return
	}
	w.wroteHeader = true
	w.status = code
}

// informational sends a 1xx response (103 Early Hints) with the header
// fields set so far, to an HTTP/1.1 client.
func (w *response) informational(code int) {
	c := w.c
	if w.req.ProtoMinor == 0 {
		return
	}
	if code == http.StatusContinue {
		if !c.canContinue.CompareAndSwap(true, false) {
			return
		}
	}
	c.out = appendStatusLine(c.out, code)
	for k, vs := range w.h {
		if k == "Content-Length" || k == "Transfer-Encoding" {
			continue
		}
		c.out = appendField(c.out, k, vs)
	}
	c.out = append(c.out, "\r\n"...)
	c.flush()
}

func (w *response) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !w.committed {
		if _, ok := w.h["Content-Length"]; !ok && len(w.pre)+len(p) <= preBufSize {
			w.pre = append(w.pre, p...)
			return len(p), nil
		}
		if err := w.commit(false, p); err != nil {
			return 0, err
		}
	}
	return w.body(p)
}

func (w *response) WriteString(s string) (int, error) {
	if !w.committed || w.chunked || w.head || w.hijacked {
		return w.Write([]byte(s))
	}
	// Committed: the string goes straight to the output buffer.
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.length >= 0 && w.written+int64(len(s)) > w.length {
		return 0, http.ErrContentLength
	}
	c := w.c
	if len(c.out)+len(s) > cap(c.out) {
		return w.Write([]byte(s))
	}
	w.written += int64(len(s))
	c.out = append(c.out, s...)
	return len(s), nil
}

// body sends body bytes after the header.
func (w *response) body(p []byte) (int, error) {
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.head || !w.bodyOK {
		return len(p), nil
	}
	c := w.c
	if c.broken {
		return 0, errWrite
	}
	if w.chunked {
		c.out = strconv.AppendInt(c.out, int64(len(p)), 16)
		c.out = append(c.out, "\r\n"...)
		if err := c.write(p); err != nil {
			return 0, err
		}
		c.out = append(c.out, "\r\n"...)
		return len(p), nil
	}
	if err := c.write(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// commit writes the status line and header fields; final is set when the
// handler has returned (the body's length is then known); p is the first
// body bytes, to sniff a Content-Type from.
func (w *response) commit(final bool, p []byte) error {
	c := w.c
	w.committed = true
	// A 100 Continue not sent by now never will be: the client may hold
	// its body back, so the connection cannot read the next request.
	continuePending := c.canContinue.Load() && c.canContinue.Swap(false)
	h := w.h
	code := w.status
	w.bodyOK = bodyAllowed(code)

	// One pass over the fields: keep them for writing, and note those
	// the framing and the defaults depend on.
	fs := w.fields[:0]
	var clv, conn []string
	hasCL, hasTE := false, false
	hasDate := w.preset != nil && w.preset.date
	hasType := w.preset != nil && w.preset.ctype
	for k, vs := range h {
		switch k {
		case "Content-Length":
			hasCL, clv = true, vs
		case "Transfer-Encoding":
			hasTE = true
			continue
		case "Trailer":
			w.trailers = w.trailers || len(vs) > 0
		case "Connection":
			conn = vs
		case "Date":
			hasDate = true
		case "Content-Type":
			hasType = true
		default:
			if strings.HasPrefix(k, http.TrailerPrefix) {
				w.trailers = true
				continue
			}
		}
		fs = append(fs, field{k, vs})
	}

	// Framing (RFC 9112 §6).
	declared := false
	if hasCL {
		if n, ok := parseLength(firstValue(clv)); ok && len(clv) == 1 {
			w.length, declared = n, true
		} else {
			delete(h, "Content-Length")
			hasCL = false
		}
	}
	if hasTE {
		delete(h, "Transfer-Encoding")
		delete(h, "Content-Length")
		w.length, declared, hasCL = -1, false, false
	}
	if len(w.pre) > 0 {
		p = w.pre
	}
	switch {
	case !w.bodyOK:
		w.length = 0
	case declared:
	case w.head:
		if final && len(w.pre) > 0 && !w.trailers {
			w.length = int64(len(w.pre))
		}
	case final && !w.trailers:
		w.length = int64(len(w.pre))
	case w.req.ProtoMinor >= 1:
		w.chunked = true
	default:
		w.closeAfter = true // HTTP/1.0: the body ends with the connection
	}

	// Connection (RFC 9112 §9.6).
	if conn != nil && hasToken(conn, "close") {
		w.closeAfter = true
	}
	if c.srv.closing.Load() {
		w.closeAfter = true
	}
	if continuePending {
		w.closeAfter = true
	}

	c.out = appendStatusLine(c.out, code)
	if w.preset != nil {
		c.out = append(c.out, w.preset.wire...)
	}
	for _, f := range fs {
		switch f.k {
		case "Content-Length":
			if !hasCL || !w.bodyOK {
				continue
			}
		case "Connection":
			if w.closeAfter {
				continue
			}
		}
		c.out = appendField(c.out, f.k, f.vs)
	}
	clear(fs)
	if cap(fs) > maxFields {
		fs = nil
	}
	w.fields = fs[:0]
	if !hasDate {
		c.out = append(c.out, "Date: "...)
		c.out = append(c.out, w.dateNow()...)
		c.out = append(c.out, "\r\n"...)
	}
	if !hasType && w.bodyOK && len(p) > 0 {
		c.out = append(c.out, "Content-Type: "...)
		c.out = append(c.out, http.DetectContentType(p)...)
		c.out = append(c.out, "\r\n"...)
	}
	if w.bodyOK && !declared && w.length >= 0 && !(w.head && len(w.pre) == 0) {
		c.out = append(c.out, "Content-Length: "...)
		c.out = strconv.AppendInt(c.out, w.length, 10)
		c.out = append(c.out, "\r\n"...)
	}
	if w.chunked {
		c.out = append(c.out, "Transfer-Encoding: chunked\r\n"...)
	}
	if w.closeAfter {
		if w.req.ProtoMinor >= 1 {
			c.out = append(c.out, "Connection: close\r\n"...)
		}
	} else if w.req.ProtoMinor == 0 {
		c.out = append(c.out, "Connection: keep-alive\r\n"...)
	}
	c.out = append(c.out, "\r\n"...)
	if len(w.pre) > 0 {
		pre := w.pre
		w.pre = w.pre[:0]
		if _, err := w.body(pre); err != nil {
			return err
		}
	}
	if c.broken {
		return errWrite
	}
	return nil
}

// finish completes the response once the handler has returned.
func (w *response) finish() {
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(true, nil)
	}
	c := w.c
	if w.chunked {
		c.out = append(c.out, "0\r\n"...)
		if w.trailers {
			w.appendTrailers()
		}
		c.out = append(c.out, "\r\n"...)
	}
	if w.bodyOK && !w.head && w.length >= 0 && w.written != w.length {
		// A short body: the client can only tell by the connection's end.
		w.closeAfter = true
	}
	if w.closeAfter {
		c.flush()
	}
}

// appendTrailers writes the declared trailer fields and those set with
// http.TrailerPrefix.
func (w *response) appendTrailers() {
	c := w.c
	for _, v := range w.h["Trailer"] {
		for k := range strings.SplitSeq(v, ",") {
			k = http.CanonicalHeaderKey(strings.TrimSpace(k))
			if vs := w.h[k]; len(vs) > 0 && k != "" {
				c.out = appendField(c.out, k, vs)
			}
		}
	}
	for k, vs := range w.h {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			c.out = appendField(c.out, http.CanonicalHeaderKey(name), vs)
		}
	}
}

func (w *response) Flush() { w.FlushError() }

// FlushError sends the header and what body is buffered (as
// http.ResponseController's Flush asks).
func (w *response) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		if err := w.commit(false, nil); err != nil {
			return err
		}
	}
	if !w.c.flush() {
		return errWrite
	}
	return nil
}

// Hijack hands the connection to the handler (a protocol switch): what
// the client sent beyond the request header comes first from the reader.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.handlerDone {
		return nil, nil, errors.New("h1: Hijack after the handler returned")
	}
	c := w.c
	if w.wroteHeader && !w.committed {
		w.commit(false, nil)
	}
	if !c.flush() {
		return nil, nil, errWrite
	}
	c.bg.stop(c)
	w.hijacked = true
	c.pollUnregister() // the connection is the handler's now
	c.state.Store(stateHijacked)
	c.setState(http.StateHijacked)
	c.readIdle.Reset()
	c.rwc.SetDeadline(time.Time{})
	var rd io.Reader = c.rwc
	if c.r < c.w {
		rd = io.MultiReader(bytes.NewReader(bytes.Clone(c.buf[c.r:c.w])), c.rwc)
		c.r = c.w
	}
	return c.rwc, bufio.NewReadWriter(bufio.NewReader(rd), bufio.NewWriter(c.rwc)), nil
}

// SetReadDeadline and SetWriteDeadline serve http.ResponseController.
func (w *response) SetReadDeadline(t time.Time) error {
	w.c.readIdle.Reset()
	return w.c.rwc.SetReadDeadline(t)
}
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.rwc.SetWriteDeadline(t) }

// EnableFullDuplex serves http.ResponseController: reading the request
// body while writing the response is always allowed here.
func (w *response) EnableFullDuplex() error { return nil }

// dateNow is the Date field's value (RFC 9110 §6.6.1), formatted once a
// second.
func (w *response) dateNow() []byte {
	now := time.Now()
	if s := now.Unix(); s != w.dateSec {
		w.dateSec = s
		now.UTC().AppendFormat(w.date[:0], http.TimeFormat)
	}
	return w.date[:]
}

func bodyAllowed(code int) bool {
	return !(code >= 100 && code <= 199) && code != http.StatusNoContent && code != http.StatusNotModified
}

func firstValue(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func hasToken(vs []string, tok string) bool {
	for _, v := range vs {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), tok) {
				return true
			}
		}
	}
	return false
}

// statusLines are the status lines of the known codes.
var statusLines = func() (t [600][]byte) {
	for code := 100; code < 600; code++ {
		if text := http.StatusText(code); text != "" {
			t[code] = []byte("HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\n")
		}
	}
	return t
}()

func appendStatusLine(b []byte, code int) []byte {
	if code < len(statusLines) && statusLines[code] != nil {
		return append(b, statusLines[code]...)
	}
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, " status code "...)
	b = strconv.AppendInt(b, int64(code), 10)
	return append(b, "\r\n"...)
}

// appendField writes a header field's lines, as net/http's Header.Write
// does: a name that is not a token is skipped, a value is trimmed of
// spaces, tabs, CRs and LFs, and a CR or LF inside becomes a space (no
// response splitting).
func appendField(b []byte, k string, vs []string) []byte {
	if len(vs) == 0 || !isTokenString(k) {
		return b
	}
	for _, v := range vs {
		b = append(b, k...)
		b = append(b, ": "...)
		if plainValue(v) {
			b = append(b, v...)
		} else {
			start := len(b)
			b = append(b, textproto.TrimString(v)...)
			for i := start; i < len(b); i++ {
				if b[i] == '\r' || b[i] == '\n' {
					b[i] = ' '
				}
			}
		}
		b = append(b, "\r\n"...)
	}
	return b
}

// plainValue reports whether v is written as it is: no white space at
// either end for textproto.TrimString to trim, no CR or LF inside (it
// looks for any byte up to CR, the rare rest take the slow path).
func plainValue(v string) bool {
	if v == "" {
		return true
	}
	if v[0] <= ' ' || v[len(v)-1] <= ' ' {
		return false
	}
	for i := 1; i < len(v)-1; i++ {
		if v[i] <= '\r' {
			return false
		}
	}
	return true
}

func isTokenString(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tchar[s[i]] {
			return false
		}
	}
	return true
}
