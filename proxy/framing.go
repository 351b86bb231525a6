package proxy

import (
	"bytes"
	"strconv"
	"sync/atomic"
)

// framing follows the HTTP/1.1 request framing (RFC 9112 §6) of the bytes
// a client sends on one plain connection, as net/http reads them, to find
// what net/http accepts silently: a request with both Content-Length and
// Transfer-Encoding, which it serves by the Transfer-Encoding alone and
// keeps the connection open after. RFC 9112 §6.1 says such a request
// might be an attempt at request smuggling and the connection must be
// closed; cellar answers it 400 and closes (Server.checkFraming). The
// tracker records the ordinal of the first such request on the connection.
//
// It is deliberately partial: header lines are only matched by name and
// bodies skipped by their declared framing. Whenever the bytes are not
// plain HTTP/1.1 requests it understands (TLS, HTTP/2, the PROXY protocol
// v2, an upgrade, anything malformed, which net/http refuses anyway), it
// stops following the connection for good. Only the reading goroutine
// touches it, except bad.
type framing struct {
	state     int
	off       bool         // stopped following the connection
	started   bool         // saw the connection's first byte
	line      []byte       // the start of the current line, at most maxLinePrefix bytes
	first     bool         // the current header line is the request line
	cl, te    bool         // the request's header has Content-Length, Transfer-Encoding
	clValue   int64        // its Content-Length (-1: did not parse)
	remaining int64        // body or chunk bytes left to skip
	requests  int64        // header sections completed
	bad       atomic.Int64 // ordinal (from 1) of the first CL+TE request; 0: none
}

const (
	inHeader = iota
	inBody
	inChunkSize
	inChunkData
	inTrailer
)

const maxLinePrefix = 64

// v2 is the start of a PROXY protocol v2 header.
var proxyV2 = []byte("\r\n\r\n\x00\r\nQUIT\n")

func newFraming() *framing { return &framing{first: true} }

// feed follows p, the next bytes read from the client.
func (f *framing) feed(p []byte) {
	if f.off || len(p) == 0 {
		return
	}
	if !f.started {
		f.started = true
		if p[0] == 0x16 || bytes.HasPrefix(p, proxyV2[:min(len(p), len(proxyV2))]) {
			f.off = true // TLS handshake, or PROXY v2: not ours to follow
			return
		}
	}
	for len(p) > 0 && !f.off {
		switch f.state {
		case inBody, inChunkData:
			n := min(int64(len(p)), f.remaining)
			p = p[n:]
			f.remaining -= n
			if f.remaining == 0 {
				if f.state == inBody {
					f.state = inHeader
				} else {
					f.state = inChunkSize
				}
			}
		default:
			i := bytes.IndexByte(p, '\n')
			chunk := p
			if i >= 0 {
				chunk = p[:i]
			}
			if room := maxLinePrefix - len(f.line); room > 0 {
				f.line = append(f.line, chunk[:min(len(chunk), room)]...)
			}
			if i < 0 {
				return
			}
			p = p[i+1:]
			f.endLine(bytes.TrimSuffix(f.line, []byte("\r")))
			f.line = f.line[:0]
		}
	}
}

// endLine handles one complete line (without CRLF; only its start when
// long).
func (f *framing) endLine(line []byte) {
	empty := len(line) == 0
	switch f.state {
	case inHeader:
		if f.first {
			if empty {
				return // blank lines before a request line
			}
			f.first = false
			if bytes.Contains(line, []byte("HTTP/2")) || bytes.HasPrefix(line, []byte("CONNECT ")) || bytes.HasPrefix(line, []byte("PRI ")) {
				f.off = true
			}
			return
		}
		if !empty {
			f.headerLine(line)
			return
		}
		f.requests++
		switch {
		case f.cl && f.te:
			f.bad.CompareAndSwap(0, f.requests)
			f.off = true // the connection closes after that request
		case f.te:
			f.state = inChunkSize
		case f.cl && f.clValue > 0:
			f.state, f.remaining = inBody, f.clValue
		case f.cl && f.clValue < 0:
			f.off = true
		}
		f.cl, f.te, f.clValue, f.first = false, false, 0, true
	case inChunkSize:
		size := line
		if i := bytes.IndexAny(size, "; \t"); i >= 0 {
			size = size[:i]
		}
		n, err := strconv.ParseInt(string(size), 16, 64)
		if err != nil || n < 0 || n > 1<<60 {
			f.off = true // net/http refuses the body and closes
			return
		}
		if n == 0 {
			f.state = inTrailer
			return
		}
		f.state, f.remaining = inChunkData, n+2 // the data and its CRLF
	case inTrailer:
		if empty {
			f.state = inHeader
		}
	}
}

// headerLine notes the framing fields of one header field line.
func (f *framing) headerLine(line []byte) {
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok {
		return
	}
	switch {
	case bytes.EqualFold(name, []byte("Content-Length")):
		n, err := strconv.ParseInt(string(bytes.TrimSpace(value)), 10, 64)
		if err != nil || (f.cl && n != f.clValue) {
			n = -1
		}
		f.cl, f.clValue = true, n
	case bytes.EqualFold(name, []byte("Transfer-Encoding")):
		f.te = true
	case bytes.EqualFold(name, []byte("Upgrade")):
		f.off = true // after a 101 the bytes are another protocol's
	}
}
