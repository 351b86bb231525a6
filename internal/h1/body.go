package h1

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
)

// maxChunkLine bounds a chunk-size line with its extensions.
const maxChunkLine = 4096

var (
	errChunk    = errors.New("h1: malformed chunked encoding")
	errTrailers = errors.New("h1: request trailers too large")
)

// body is a request body: Content-Length bytes, or chunked (RFC 9112 §7.1)
// with its trailer fields. Reads may come from another goroutine than the
// handler's (a transport sending it on); mu orders them with the end of
// the request.
type body struct {
	c       *conn
	p       *requestParser
	req     *http.Request // for its Trailer
	chunked bool
	expect  bool // 100 Continue is to be sent before the first read

	mu      sync.Mutex // protects the fields below
	left    int64      // bytes left: of the body, or of the current chunk when chunked
	inChunk bool       // chunked: between a chunk-size line and its data's CRLF
	eof     bool
	err     error // sticky
	closed  bool  // the request is over
	shut    bool  // the handler closed the body
}

// Close ends the handler's reading; what is left is drained after the
// handler returns.
func (b *body) Close() error {
	b.mu.Lock()
	b.shut = true
	b.mu.Unlock()
	return nil
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.shut {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.eof {
		return 0, io.EOF
	}
	if b.expect {
		b.expect = false
		if !b.c.sendContinue() {
			b.err = io.ErrUnexpectedEOF
			return 0, b.err
		}
	}
	n, err := b.readLocked(p)
	if err == io.EOF {
		b.eof = true
		b.c.bg.bodyRead(b.c)
	} else if err != nil {
		b.err = err
	}
	return n, err
}

func (b *body) readLocked(p []byte) (int, error) {
	if !b.chunked {
		if b.left == 0 {
			return 0, io.EOF
		}
		n, err := b.readLeft(p)
		if b.left == 0 && err == nil {
			err = io.EOF
		}
		return n, err
	}
	if !b.inChunk {
		size, err := b.chunkSize()
		if err != nil {
			return 0, err
		}
		if size == 0 {
			return 0, b.trailers()
		}
		b.left, b.inChunk = size, true
	}
	n, err := b.readLeft(p)
	if err == nil && b.left == 0 {
		// The chunk's data ends with CRLF.
		line, lerr := b.c.readLine(2)
		if lerr != nil {
			return n, lerr
		}
		if len(line) != 2 || line[0] != '\r' {
			return n, errChunk
		}
		b.inChunk = false
	}
	return n, err
}

// readLeft reads at most the bytes left (of the body or the chunk); the
// connection's end before them is an error.
func (b *body) readLeft(p []byte) (int, error) {
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.c.read(p)
	b.left -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// chunkSize reads a chunk-size line: hex digits, then extensions (ignored
// but checked), then CRLF.
func (b *body) chunkSize() (int64, error) {
	line, err := b.c.readLine(maxChunkLine)
	if err != nil {
		return 0, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return 0, errChunk
	}
	line = line[:len(line)-2]
	var n int64
	i := 0
	for ; i < len(line); i++ {
		d := unhex(line[i])
		if d < 0 {
			break
		}
		if i >= 15 {
			return 0, errChunk // beyond any body we would read
		}
		n = n<<4 | int64(d)
	}
	if i == 0 {
		return 0, errChunk
	}
	ext := trimOWS(line[i:])
	if len(ext) > 0 && ext[0] != ';' {
		return 0, errChunk
	}
	for _, c := range ext {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return 0, errChunk
		}
	}
	return n, nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// trailers reads the trailer section after the last chunk, into the
// request's Trailer; its size counts against the header limit.
func (b *body) trailers() error {
	budget := b.c.srv.maxHeaderBytes()
	for {
		line, err := b.c.readLine(min(budget, maxChunkLine*4))
		if errors.Is(err, errLineTooLong) {
			return errTrailers
		}
		if err != nil {
			return err
		}
		budget -= len(line)
		if budget < 0 {
			return errTrailers
		}
		fl := trimCR(line[:len(line)-1])
		if len(fl) == 0 {
			return io.EOF
		}
		k, v, err := b.p.field(fl)
		if err != nil {
			return errChunk
		}
		switch k {
		case "Transfer-Encoding", "Content-Length", "Host", "Trailer":
			continue // framing and routing fields are not taken from trailers
		}
		if b.req.Trailer == nil {
			b.req.Trailer = http.Header{}
		}
		b.req.Trailer[k] = append(b.req.Trailer[k], v)
	}
}

// close ends the body when the handler has returned: what is left is read
// and dropped, up to maxDrain. It reports whether the connection can read
// the next request.
func (b *body) close() bool {
	if !b.mu.TryLock() {
		// A read is blocked in another goroutine: interrupt it.
		b.c.setReadDeadlineAt(aLongTimeAgo)
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		return false
	}
	defer b.mu.Unlock()
	ok := b.eof
	if !ok && b.err == nil && !b.expect {
		// Drain, within the header timeout.
		b.c.setReadDeadline(b.c.srv.headerTimeout())
		n, err := io.Copy(io.Discard, io.LimitReader(drainReader{b}, maxDrain+1))
		ok = err == nil && n <= maxDrain && b.eof
	}
	b.closed = true
	return ok
}

// drainReader reads a body whose lock is held.
type drainReader struct{ b *body }

func (d drainReader) Read(p []byte) (int, error) {
	n, err := d.b.readLocked(p)
	if err == io.EOF {
		d.b.eof = true
	}
	return n, err
}

// sendContinue writes "100 Continue" unless the response has begun; it
// reports false when the write failed.
func (c *conn) sendContinue() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.canContinue.CompareAndSwap(true, false) {
		return true
	}
	if len(c.out) > 0 {
		return true // not reached: the connection flushes before such a handler
	}
	_, err := c.rwc.Write([]byte("HTTP/1.1 100 Continue\r\n\r\n"))
	return err == nil
}

var errLineTooLong = errors.New("h1: line too long")

// read reads body bytes: what the buffer holds, else from the connection
// (directly into p when p is large).
func (c *conn) read(p []byte) (int, error) {
	if c.r < c.w {
		n := copy(p, c.buf[c.r:c.w])
		c.r += n
		return n, nil
	}
	if len(p) >= len(c.buf) {
		return c.rwc.Read(p)
	}
	c.r, c.w = 0, 0
	if err := c.fill(); err != nil {
		return 0, err
	}
	n := copy(p, c.buf[c.r:c.w])
	c.r += n
	return n, nil
}

// readLine returns the next line, LF included, of at most max bytes.
func (c *conn) readLine(max int) ([]byte, error) {
	for {
		if i := bytes.IndexByte(c.buf[c.r:c.w], '\n'); i >= 0 {
			if i+1 > max {
				return nil, errLineTooLong
			}
			line := c.buf[c.r : c.r+i+1]
			c.r += i + 1
			return line, nil
		}
		if c.w-c.r >= max {
			return nil, errLineTooLong
		}
		if c.w == len(c.buf) && c.r == 0 {
			c.grow(max + 1)
		}
		if err := c.fill(); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}
