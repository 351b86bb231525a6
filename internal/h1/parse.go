package h1

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// parseError is a request that cannot be served: it is answered with
// status and the connection closed.
type parseError struct {
	status int
	msg    string
}

func (e *parseError) Error() string { return fmt.Sprintf("%d %s", e.status, e.msg) }

func badRequest(format string, args ...any) error {
	return &parseError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// errClientGone is a connection that ended before a request began.
var errClientGone = errors.New("h1: connection closed before a request")

// requestParser reads the requests of one connection.
type requestParser struct {
	c *conn

	ctx     *requestContext // the current request's
	bodyLen int64           // declared body length: 0 none, -1 chunked
	body    *body           // nil when bodyLen is 0
	expect  bool            // the client waits for 100 Continue

	// The strings of field names and values met before on the
	// connection, reused rather than made again: last holds the last value
	// of each of commonFields; keys and values (both bounded by maxKeys)
	// the other names and their last values.
	last   [len(commonFields)]string
	keys   map[string]string
	values map[string]string
}

// read reads the next request header and returns the request to serve.
func (p *requestParser) read() (*http.Request, error) {
	c := p.c
	start, end, err := p.readHeader()
	if err != nil {
		return nil, err
	}
	block := c.buf[start:end]
	c.r = end
	return p.parse(block)
}

// readHeader finds the next request's header block in the buffer (reading
// as needed): from the request line to the empty line that ends it, both
// included. Empty lines before the request line are skipped (RFC 9112
// §2.2).
func (p *requestParser) readHeader() (start, end int, err error) {
	c := p.c
	limit := c.srv.maxHeaderBytes()
	scanned := 0 // bytes of buf[c.r:] made of whole lines
	for {
		for scanned == 0 && c.r < c.w {
			if c.buf[c.r] == '\n' {
				c.r++
			} else if c.buf[c.r] == '\r' && c.r+1 < c.w && c.buf[c.r+1] == '\n' {
				c.r += 2
			} else {
				break
			}
		}
		b := c.buf[c.r:c.w]
		for {
			i := bytes.IndexByte(b[scanned:], '\n')
			if i < 0 {
				break
			}
			lineStart := scanned
			scanned += i + 1
			if scanned > limit {
				return 0, 0, &parseError{http.StatusRequestHeaderFieldsTooLarge, "request header too large"}
			}
			if lineStart > 0 && (i == 0 || (i == 1 && b[lineStart] == '\r')) {
				return c.r, c.r + scanned, nil
			}
		}
		if c.w-c.r >= limit {
			return 0, 0, &parseError{http.StatusRequestHeaderFieldsTooLarge, "request header too large"}
		}
		if c.w == len(c.buf) {
			if c.r > 0 {
				c.compact()
			} else {
				c.grow(min(2*len(c.buf), limit))
			}
		}
		if err := c.fill(); err != nil {
			if c.r == c.w {
				return 0, 0, errClientGone
			}
			return 0, 0, err
		}
	}
}

var (
	proto11 = "HTTP/1.1"
	proto10 = "HTTP/1.0"
)

// methodOf is the method named b: the usual methods' strings are not
// made per request.
func methodOf(b []byte) string {
	switch string(b) {
	case "GET":
		return "GET"
	case "HEAD":
		return "HEAD"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "OPTIONS":
		return "OPTIONS"
	case "PATCH":
		return "PATCH"
	case "CONNECT":
		return "CONNECT"
	case "TRACE":
		return "TRACE"
	case "PURGE":
		return "PURGE"
	case "BAN":
		return "BAN"
	}
	return string(b)
}

// commonFields are the canonical names of the usual request fields: key
// returns these strings, and a connection keeps the last value of each
// (requestParser.last), found without a map (commonField).
var commonFields = [...]string{"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Authorization",
	"Cache-Control", "Connection", "Content-Length", "Content-Type", "Cookie", "Expect", "Forwarded", "Host",
	"If-Match", "If-Modified-Since", "If-None-Match", "If-Range", "If-Unmodified-Since", "Origin", "Pragma",
	"Range", "Referer", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "User-Agent", "Via",
	"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Request-Id",
	"Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions", "Sec-Websocket-Protocol",
	"Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User", "Upgrade-Insecure-Requests", "Dnt",
	"Sec-Ch-Ua", "Sec-Ch-Ua-Mobile", "Sec-Ch-Ua-Platform", "Priority", "Purpose", "Sec-Purpose"}

// fieldSlots indexes commonFields by fieldHash, plus one (0: empty),
// probed linearly: a cache line's worth of table, and a hash of three
// bytes, where a map would hash the whole name.
var fieldSlots = func() (t [256]uint8) {
	for i, k := range commonFields {
		h := fieldHash([]byte(k))
		for t[h] != 0 {
			h++
		}
		t[h] = uint8(i + 1)
	}
	return t
}()

func fieldHash(canon []byte) uint8 {
	return uint8(len(canon)*29 + int(canon[0])*7 + int(canon[len(canon)-1])*3 + int(canon[len(canon)/2]))
}

// commonField returns the index in commonFields of the canonical name,
// or -1.
func commonField(canon []byte) int {
	for h := fieldHash(canon); ; h++ {
		i := fieldSlots[h]
		if i == 0 {
			return -1
		}
		if commonFields[i-1] == string(canon) {
			return int(i - 1)
		}
	}
}

// maxKeys bounds the names and values a connection remembers.
const maxKeys = 64

// A server keeps the request targets it met last, up to targetSlots of at
// most maxInternedTarget bytes each (about 1 MiB at most), so that a hot
// URL's target string is not made again for each request (Server.targets).
const (
	targetSlots       = 4096
	maxInternedTarget = 256
)

// parse reads a request line and its header fields (RFC 9112 §3, §5).
func (p *requestParser) parse(block []byte) (*http.Request, error) {
	c := p.c
	nl := bytes.IndexByte(block, '\n')
	line := trimCR(block[:nl])
	rest := block[nl+1:]

	// request-line = method SP request-target SP HTTP-version
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return nil, badRequest("malformed request line")
	}
	mb := line[:sp1]
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 < 0 {
		return nil, badRequest("malformed request line")
	}
	tb := line[sp1+1 : sp1+1+sp2]
	vb := line[sp1+2+sp2:]
	if !isToken(mb) {
		return nil, badRequest("invalid method")
	}
	if len(tb) == 0 || !validTarget(tb) {
		return nil, badRequest("invalid request target")
	}
	r := &c.tmpl
	switch string(vb) {
	case proto11:
		r.Proto, r.ProtoMajor, r.ProtoMinor = proto11, 1, 1
	case proto10:
		r.Proto, r.ProtoMajor, r.ProtoMinor = proto10, 1, 0
	default:
		major, minor, ok := http.ParseHTTPVersion(string(vb))
		if !ok {
			return nil, badRequest("malformed HTTP version")
		}
		if major != 1 {
			return nil, &parseError{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
		}
		r.Proto, r.ProtoMajor, r.ProtoMinor = string(vb), major, minor
	}
	method := methodOf(mb)
	r.Method = method
	target := c.srv.targets.Bytes(tb)

	// Header fields.
	n := bytes.Count(rest, []byte{'\n'}) - 1
	pr, vals := c.perRequest(n)
	h := pr.header
	if n > len(vals) && n > 1 {
		vals = make([]string, n)
	}
	var host, cl, te, expect string
	var hosts, cls, tes int
	connClose, connKeepAlive, pragma := false, false, false
	var trailer []string
	for i := 0; i < n; i++ {
		e := bytes.IndexByte(rest, '\n')
		fl := trimCR(rest[:e])
		rest = rest[e+1:]
		k, v, err := p.field(fl)
		if err != nil {
			return nil, err
		}
		switch k {
		case "Host":
			hosts++
			host = v
			continue // in r.Host, as net/http keeps it
		case "Content-Length":
			cls++
			cl = v
		case "Transfer-Encoding":
			tes++
			te = v
			continue // in r.TransferEncoding
		case "Connection":
			for f := range strings.SplitSeq(v, ",") {
				f = strings.TrimSpace(f)
				connClose = connClose || strings.EqualFold(f, "close")
				connKeepAlive = connKeepAlive || strings.EqualFold(f, "keep-alive")
			}
		case "Expect":
			expect = v
		case "Trailer":
			trailer = append(trailer, v)
		case "Pragma":
			pragma = true
		}
		if vals == nil {
			vals = make([]string, n) // a lone field other than Host
		}
		vals[i] = v
		if old, dup := h[k]; dup {
			h[k] = append(old, v)
		} else {
			h[k] = vals[i : i+1 : i+1]
		}
	}

	// Host (RFC 9112 §3.2): exactly one on HTTP/1.1.
	if hosts > 1 {
		return nil, badRequest("too many Host headers")
	}
	if hosts == 0 && r.ProtoMinor >= 1 {
		return nil, badRequest("missing required Host header")
	}
	if !validHost(host) {
		return nil, badRequest("malformed Host header")
	}

	// The target (RFC 9112 §3.2): origin-form mostly, absolute-form from
	// proxies, authority-form for CONNECT.
	u := &pr.url
	if err := parseTarget(u, method, target); err != nil {
		return nil, badRequest("invalid request target")
	}
	r.URL = u
	r.RequestURI = target
	r.Host = host
	if u.Host != "" {
		r.Host = u.Host // absolute-form wins over Host (RFC 9112 §3.2.2)
	}

	// Framing (RFC 9112 §6): anything two readers could read differently
	// is refused.
	p.bodyLen = 0
	r.ContentLength = 0
	r.TransferEncoding = nil
	if tes > 0 {
		if cls > 0 {
			return nil, badRequest("both Content-Length and Transfer-Encoding")
		}
		if r.ProtoMinor == 0 {
			return nil, badRequest("Transfer-Encoding in an HTTP/1.0 request")
		}
		if tes > 1 || !strings.EqualFold(te, "chunked") {
			if tes == 1 && !strings.Contains(strings.ToLower(te), "chunked") {
				return nil, &parseError{http.StatusNotImplemented, "unsupported transfer encoding"}
			}
			return nil, badRequest("invalid Transfer-Encoding")
		}
		p.bodyLen = -1
		r.ContentLength = -1
		r.TransferEncoding = chunkedTE
	} else if cls > 0 {
		if cls > 1 {
			return nil, badRequest("repeated Content-Length")
		}
		n, ok := parseLength(cl)
		if !ok {
			return nil, badRequest("invalid Content-Length")
		}
		p.bodyLen = n
		r.ContentLength = n
	}

	// Connection (RFC 9112 §9.3): HTTP/1.1 persists unless asked to close;
	// HTTP/1.0 only when asked to keep alive.
	r.Close = connClose || (r.ProtoMinor == 0 && !connKeepAlive)

	// Expect (RFC 9110 §10.1.1).
	p.expect = false
	if expect != "" {
		if !strings.EqualFold(expect, "100-continue") {
			return nil, &parseError{http.StatusExpectationFailed, "unsupported Expect"}
		}
		p.expect = r.ProtoMinor >= 1 && p.bodyLen != 0
	}

	// As net/http does (RFC 9111 §5.4): a lone "Pragma: no-cache" counts
	// as "Cache-Control: no-cache".
	if pragma && h["Pragma"][0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = noCache
		}
	}

	// As net/http does: the fields a chunked body's trailer section will
	// have are in r.Trailer, not in the header (of a body not chunked,
	// Trailer stays in the header, unread).
	r.Trailer = nil
	if len(trailer) > 0 && p.bodyLen < 0 {
		delete(h, "Trailer")
		for _, v := range trailer {
			for k := range strings.SplitSeq(v, ",") {
				k = http.CanonicalHeaderKey(strings.TrimSpace(k))
				switch k {
				case "Transfer-Encoding", "Trailer", "Content-Length":
					return nil, badRequest("bad trailer key")
				case "":
					continue
				}
				if r.Trailer == nil {
					r.Trailer = http.Header{}
				}
				r.Trailer[k] = nil
			}
		}
	}

	r.Header = h
	r.RemoteAddr = c.remote
	r.TLS = c.tls
	r.Body = http.NoBody
	p.body = nil
	if p.bodyLen != 0 {
		p.body = &body{c: c, p: p, left: p.bodyLen, chunked: p.bodyLen < 0, expect: p.expect}
		r.Body = p.body
		// The body is read without a deadline; the handler sets its own.
		c.setReadDeadlineAt(zeroTime)
	}
	req := c.request(pr)
	if p.body != nil {
		p.body.req = req
	}
	return req, nil
}

var (
	zeroTime  time.Time
	chunkedTE = []string{"chunked"}
	noCache   = []string{"no-cache"}
)

// field parses one header field line (RFC 9112 §5): name ":" OWS value
// OWS, the name a token with nothing between it and the colon, no line
// folding, no control character in the value.
func (p *requestParser) field(line []byte) (key, value string, err error) {
	if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
		return "", "", badRequest("obsolete line folding")
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return "", "", badRequest("malformed header line")
	}
	name := line[:colon]
	if !isToken(name) {
		return "", "", badRequest("invalid header name")
	}
	v := trimOWS(line[colon+1:])
	for _, b := range v {
		if (b < ' ' && b != '\t') || b == 0x7f {
			return "", "", badRequest("invalid header value")
		}
	}
	key, i := p.key(name)
	if i >= 0 {
		if old := p.last[i]; old == string(v) {
			return key, old, nil
		}
		value = string(v)
		p.last[i] = value
		return key, value, nil
	}
	if p.values != nil {
		if old, ok := p.values[key]; ok && old == string(v) {
			return key, old, nil
		}
	}
	value = string(v)
	if p.values == nil {
		p.values = make(map[string]string, 16)
	}
	if _, ok := p.values[key]; ok || len(p.values) < maxKeys {
		p.values[key] = value
	}
	return key, value, nil
}

// key returns the canonical form of a field name (a token), without
// allocating for the usual names and those seen before on the connection,
// and its index in commonFields (-1: not one of them).
func (p *requestParser) key(name []byte) (string, int) {
	var arr [64]byte
	var canon []byte
	if len(name) <= len(arr) {
		canon = arr[:len(name)]
	} else {
		canon = make([]byte, len(name))
	}
	upper := true
	for i, b := range name {
		if upper && 'a' <= b && b <= 'z' {
			b -= 'a' - 'A'
		} else if !upper && 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		canon[i] = b
		upper = b == '-'
	}
	if i := commonField(canon); i >= 0 {
		return commonFields[i], i
	}
	if k, ok := p.keys[string(canon)]; ok {
		return k, -1
	}
	k := string(canon)
	if p.keys == nil {
		p.keys = make(map[string]string)
	}
	if len(p.keys) < maxKeys {
		p.keys[k] = k
	}
	return k, -1
}

// finish completes a request after its handler: the body the handler did
// not read is read and dropped (up to maxDrain) so that the connection
// can go on; else it is closed.
func (p *requestParser) finish() {
	if p.body == nil {
		return
	}
	if !p.body.close() {
		p.c.broken = true
	}
	p.body = nil
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// alnumAnd is the set of ASCII letters, digits and the bytes of extra.
func alnumAnd(extra string) (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for i := 0; i < len(extra); i++ {
		t[extra[i]] = true
	}
	return t
}

// tchar (RFC 9110 §5.6.2).
var tchar = alnumAnd("!#$%&'*+-.^_`|~")

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tchar[c] {
			return false
		}
	}
	return true
}

// validTarget refuses whitespace and control characters in a target.
func validTarget(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// pathSafe are the bytes a path may hold and url.URL keep as they are
// (no RawPath): the fast path of parseTarget.
var pathSafe = alnumAnd("-._~$&+,/:;=@")

// parseTarget fills u from a request target as net/http does
// (url.ParseRequestURI), without it for the usual origin-form targets.
func parseTarget(u *url.URL, method, target string) error {
	if target[0] == '/' {
		path, query, hasQuery := strings.Cut(target, "?")
		fast := !hasQuery || query != ""
		for i := 0; fast && i < len(path); i++ {
			fast = pathSafe[path[i]]
		}
		for i := 0; fast && i < len(query); i++ {
			fast = query[i] != '#'
		}
		if fast {
			u.Path, u.RawQuery = path, query
			return nil
		}
	}
	raw := target
	authority := method == "CONNECT" && target[0] != '/'
	if authority {
		raw = "http://" + target
	}
	pu, err := url.ParseRequestURI(raw)
	if err != nil {
		return err
	}
	if authority {
		pu.Scheme = ""
	}
	*u = *pu
	return nil
}

// validHost reports whether a Host value holds only the bytes a host and
// port may (net/http's rule).
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		if !hostByte[h[i]] {
			return false
		}
	}
	return true
}

var hostByte = alnumAnd("!$%&'()*+,-.:;=[]_~")

// parseLength parses a Content-Length value: digits only (RFC 9110 §8.6).
func parseLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
