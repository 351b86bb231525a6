// Package accesslog writes cellar's access log: one line per request in a
// chosen format (text, JSON or nginx's combined), appended without
// allocating to a bounded buffer that a background goroutine writes out, so
// that the request path never waits on the log's I/O.
package accesslog

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Format is the layout of an access line.
type Format int

const (
	// Text is logfmt (key=value, values quoted when needed), with the
	// time, level and msg keys of log/slog's text handler.
	Text Format = iota
	// JSON is one JSON object per line.
	JSON
	// Combined is nginx's (and Apache's) combined log format, which log
	// analysers read; it has no cache fields.
	Combined
)

// ParseFormat returns the format named text, json or combined.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "", "text":
		return Text, nil
	case "json":
		return JSON, nil
	case "combined":
		return Combined, nil
	}
	return 0, fmt.Errorf("accesslog: format %q: want text, json or combined", s)
}

func (f Format) String() string {
	switch f {
	case JSON:
		return "json"
	case Combined:
		return "combined"
	}
	return "text"
}

// Entry is one request's access line.
type Entry struct {
	Time       time.Time     // when the request arrived
	Duration   time.Duration // until the handler returned
	Remote     netip.Addr    // the real client address; "-" when not valid
	Method     string
	Host       string
	URI        string // as the client sent it
	Proto      string // "HTTP/1.1", "HTTP/2.0"
	Status     int
	Bytes      int64  // body bytes written
	Cache      string // the Cache-Status value; empty when none
	UserAgent  string
	Referer    string
	Origin     string        // host:port of the origin asked; empty when none was
	OriginTime time.Duration // from sending to the origin until the response began; with Origin
	// RequestID is the request's id; when empty the line shows the id
	// made from Seq (see ID).
	RequestID string
	Seq       uint64
}

// Append appends e's line, newline included, to b.
func (f Format) Append(b []byte, e *Entry) []byte {
	switch f {
	case JSON:
		return appendJSON(b, e)
	case Combined:
		return appendCombined(b, e)
	}
	return appendText(b, e)
}

// second is the text of one second in the layout of the text and JSON
// lines, up to the fraction: "2006-01-02T15:04:05.".
type second struct {
	unix int64
	text [20]byte
}

// lastSecond is the second appendTime formatted last: the lines of one
// second share it, so that a line formats only its milliseconds.
var lastSecond atomic.Pointer[second]

// appendTime appends t in UTC as 2006-01-02T15:04:05.000Z.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	s := lastSecond.Load()
	if s == nil || s.unix != t.Unix() {
		s = &second{unix: t.Unix()}
		if len(t.AppendFormat(s.text[:0], "2006-01-02T15:04:05.")) != len(s.text) {
			return t.AppendFormat(b, "2006-01-02T15:04:05.000Z") // a year outside 0-9999
		}
		lastSecond.Store(s)
	}
	ms := t.Nanosecond() / 1e6
	return append(append(b, s.text[:]...), byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}

func appendText(b []byte, e *Entry) []byte {
	b = append(b, "time="...)
	b = appendTime(b, e.Time)
	b = append(b, " level=INFO msg=access method="...)
	b = appendLogfmt(b, e.Method)
	b = append(b, " host="...)
	b = appendLogfmt(b, e.Host)
	b = append(b, " uri="...)
	b = appendLogfmt(b, e.URI)
	b = append(b, " proto="...)
	b = appendLogfmt(b, e.Proto)
	b = append(b, " status="...)
	b = appendStatus(b, e.Status)
	b = append(b, " bytes="...)
	b = strconv.AppendInt(b, e.Bytes, 10)
	b = append(b, " cache="...)
	b = appendLogfmt(b, e.Cache)
	b = append(b, " duration_ms="...)
	b = appendMillis(b, e.Duration)
	b = append(b, " remote="...)
	b = appendAddr(b, e.Remote)
	b = append(b, " user_agent="...)
	b = appendLogfmt(b, e.UserAgent)
	b = append(b, " referer="...)
	b = appendLogfmt(b, e.Referer)
	if e.Origin != "" {
		b = append(b, " origin="...)
		b = appendLogfmt(b, e.Origin)
		b = append(b, " origin_ms="...)
		b = appendMillis(b, e.OriginTime)
	}
	b = append(b, " request_id="...)
	if e.RequestID != "" {
		b = appendLogfmt(b, e.RequestID)
	} else {
		b = appendID(b, e)
	}
	return append(b, '\n')
}

func appendJSON(b []byte, e *Entry) []byte {
	b = append(b, `{"time":"`...)
	b = appendTime(b, e.Time)
	b = append(b, `","method":`...)
	b = appendJSONString(b, e.Method)
	b = append(b, `,"host":`...)
	b = appendJSONString(b, e.Host)
	b = append(b, `,"uri":`...)
	b = appendJSONString(b, e.URI)
	b = append(b, `,"proto":`...)
	b = appendJSONString(b, e.Proto)
	b = append(b, `,"status":`...)
	b = appendStatus(b, e.Status)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.Bytes, 10)
	b = append(b, `,"cache":`...)
	b = appendJSONString(b, e.Cache)
	b = append(b, `,"duration_ms":`...)
	b = appendMillis(b, e.Duration)
	b = append(b, `,"remote":"`...)
	b = append(appendAddr(b, e.Remote), '"')
	b = append(b, `,"user_agent":`...)
	b = appendJSONString(b, e.UserAgent)
	b = append(b, `,"referer":`...)
	b = appendJSONString(b, e.Referer)
	if e.Origin != "" {
		b = append(b, `,"origin":`...)
		b = appendJSONString(b, e.Origin)
		b = append(b, `,"origin_ms":`...)
		b = appendMillis(b, e.OriginTime)
	}
	b = append(b, `,"request_id":"`...)
	b = appendID(b, e) // ids are visible ASCII without quotes (see ValidID)
	return append(b, "\"}\n"...)
}

// appendCombined writes nginx's combined format:
// $remote_addr - $remote_user [$time_local] "$request" $status
// $body_bytes_sent "$http_referer" "$http_user_agent".
func appendCombined(b []byte, e *Entry) []byte {
	b = appendAddr(b, e.Remote)
	b = append(b, " - - ["...)
	b = e.Time.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] \""...)
	b = appendCombinedField(b, e.Method)
	b = append(b, ' ')
	b = appendCombinedField(b, e.URI)
	b = append(b, ' ')
	b = appendCombinedField(b, e.Proto)
	b = append(b, "\" "...)
	b = appendStatus(b, e.Status)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.Bytes, 10)
	b = append(b, " \""...)
	b = appendCombinedField(b, e.Referer)
	b = append(b, "\" \""...)
	b = appendCombinedField(b, e.UserAgent)
	return append(b, "\"\n"...)
}

// appendCombinedField writes s as nginx does: "-" when empty, and bytes
// outside printable ASCII, '"' and '\' as \xHH.
func appendCombinedField(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
			continue
		}
		b = append(b, c)
	}
	return b
}

// appendAddr writes a, or "-" when it is not valid.
func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(b, '-')
	}
	return a.AppendTo(b)
}

const hexDigits = "0123456789ABCDEF"

// appendLogfmt writes s bare when it is a non-empty run of visible ASCII
// without '"', '=' or '\', else quoted as a Go string (directly when it
// needs no escapes, as a Cache-Status value: strconv's quoting goes rune by
// rune).
func appendLogfmt(b []byte, s string) []byte {
	var class uint8
	for i := 0; i < len(s); i++ {
		class |= logfmtClass[s[i]]
	}
	switch {
	case class == 0 && s != "":
		return append(b, s...)
	case class&needsEscape == 0:
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	return strconv.AppendQuote(b, s)
}

// What a byte asks of a logfmt value (logfmtClass): to be quoted, or to
// be escaped inside the quotes.
const (
	needsQuotes = 1 << iota // ' ' and '='
	needsEscape             // control bytes, '"', '\' and bytes outside ASCII
)

var logfmtClass = func() (t [256]uint8) {
	for c := range t {
		switch {
		case c < ' ' || c > '~' || c == '"' || c == '\\':
			t[c] = needsEscape
		case c == ' ' || c == '=':
			t[c] = needsQuotes
		}
	}
	return t
}()

// appendJSONString writes s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, `\u00`...)
				b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// appendMillis writes d in milliseconds with microsecond precision.
func appendMillis(b []byte, d time.Duration) []byte {
	us := d.Microseconds()
	if us < 0 {
		b = append(b, '-')
		us = -us
	}
	b = strconv.AppendInt(b, us/1000, 10)
	b = append(b, '.')
	frac := us % 1000
	b = append(b, byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	return b
}

// The ids cellar makes are a random per-process prefix and a sequence
// number: unique across restarts in practice, and cheap enough to make
// for every request.
var (
	idPrefix = newIDPrefix()
	idSeq    atomic.Uint64
)

func newIDPrefix() string {
	var r [6]byte
	rand.Read(r[:])
	return hex.EncodeToString(r[:]) + "-"
}

// NextSeq returns a new sequence number for ID.
func NextSeq() uint64 { return idSeq.Add(1) }

// ID returns the request id that cellar made from seq.
func ID(seq uint64) string {
	return string(strconv.AppendUint(append(make([]byte, 0, 32), idPrefix...), seq, 16))
}

func appendID(b []byte, e *Entry) []byte {
	if e.RequestID != "" {
		return append(b, e.RequestID...)
	}
	return appendHex(append(b, idPrefix...), e.Seq)
}

// appendHex writes v in lower-case hexadecimal, as strconv.AppendUint(b,
// v, 16) does, without its general conversion.
func appendHex(b []byte, v uint64) []byte {
	var d [16]byte
	i := len(d)
	for {
		i--
		d[i] = "0123456789abcdef"[v&0xf]
		v >>= 4
		if v == 0 {
			break
		}
	}
	return append(b, d[i:]...)
}

// appendStatus writes a status code: three digits directly, as every
// valid one has.
func appendStatus(b []byte, code int) []byte {
	if code < 100 || code > 999 {
		return strconv.AppendInt(b, int64(code), 10)
	}
	return append(b, byte('0'+code/100), byte('0'+code/10%10), byte('0'+code%10))
}

// ValidID reports whether a client's X-Request-ID may be kept: 1 to 128
// visible ASCII characters other than '"' and '\'.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
