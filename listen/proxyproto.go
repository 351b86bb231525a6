package listen

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cellar-cache/cellar/internal/h1"
)

// ErrProxyHeader is returned by a PROXY protocol connection whose header is
// missing or malformed; the connection is closed.
var ErrProxyHeader = errors.New("listen: bad PROXY protocol header")

// v2Signature opens every PROXY protocol v2 header.
var v2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")

// v1MaxLen is the longest v1 header line, CRLF included (the spec's 107).
const v1MaxLen = 107

// readProxyHeader reads a PROXY protocol v1 or v2 header from br (the
// HAProxy spec, "The PROXY protocol", versions 1 and 2) and returns the
// source address it carries. ok is false for a header that carries no
// address (v1 UNKNOWN, v2 LOCAL, a non-IP family): the connection's own
// peer is then the client.
func readProxyHeader(br *bufio.Reader) (src netip.AddrPort, ok bool, err error) {
	head, err := br.Peek(len(v2Signature))
	if err != nil && !(errors.Is(err, io.EOF) && bytes.HasPrefix(head, []byte("PROXY "))) {
		return netip.AddrPort{}, false, fmt.Errorf("%w: %v", ErrProxyHeader, err)
	}
	if bytes.Equal(head, v2Signature) {
		return readV2(br)
	}
	if bytes.HasPrefix(head, []byte("PROXY ")) {
		return readV1(br)
	}
	return netip.AddrPort{}, false, fmt.Errorf("%w: no PROXY header", ErrProxyHeader)
}

// readV1 reads "PROXY TCP4|TCP6 src dst sport dport\r\n" or
// "PROXY UNKNOWN ...\r\n".
func readV1(br *bufio.Reader) (netip.AddrPort, bool, error) {
	var line []byte
	for len(line) < v1MaxLen {
		b, err := br.ReadByte()
		if err != nil {
			return netip.AddrPort{}, false, fmt.Errorf("%w: v1: %v", ErrProxyHeader, err)
		}
		line = append(line, b)
		if b == '\n' {
			break
		}
	}
	s, found := strings.CutSuffix(string(line), "\r\n")
	if !found {
		return netip.AddrPort{}, false, fmt.Errorf("%w: v1: no CRLF in %d bytes", ErrProxyHeader, v1MaxLen)
	}
	f := strings.Split(s, " ")
	if len(f) >= 2 && f[1] == "UNKNOWN" {
		return netip.AddrPort{}, false, nil
	}
	if len(f) != 6 || (f[1] != "TCP4" && f[1] != "TCP6") {
		return netip.AddrPort{}, false, fmt.Errorf("%w: v1: %q", ErrProxyHeader, s)
	}
	src, err := netip.ParseAddr(f[2])
	if err == nil {
		_, err = netip.ParseAddr(f[3])
	}
	if err != nil || (f[1] == "TCP4") != src.Is4() {
		return netip.AddrPort{}, false, fmt.Errorf("%w: v1: bad address in %q", ErrProxyHeader, s)
	}
	port, err := strconv.ParseUint(f[4], 10, 16)
	if _, err2 := strconv.ParseUint(f[5], 10, 16); err != nil || err2 != nil {
		return netip.AddrPort{}, false, fmt.Errorf("%w: v1: bad port in %q", ErrProxyHeader, s)
	}
	return netip.AddrPortFrom(src, uint16(port)), true, nil
}

// readV2 reads the binary header: signature, version and command, family
// and transport, length, addresses, then TLVs (skipped).
func readV2(br *bufio.Reader) (netip.AddrPort, bool, error) {
	var fixed [16]byte
	if _, err := io.ReadFull(br, fixed[:]); err != nil {
		return netip.AddrPort{}, false, fmt.Errorf("%w: v2: %v", ErrProxyHeader, err)
	}
	verCmd, fam := fixed[12], fixed[13]
	n := int(binary.BigEndian.Uint16(fixed[14:]))
	if verCmd>>4 != 2 || verCmd&0xf > 1 {
		return netip.AddrPort{}, false, fmt.Errorf("%w: v2: version/command %#x", ErrProxyHeader, verCmd)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return netip.AddrPort{}, false, fmt.Errorf("%w: v2: %v", ErrProxyHeader, err)
	}
	if verCmd&0xf == 0 { // LOCAL: a health check of the proxy itself
		return netip.AddrPort{}, false, nil
	}
	switch fam >> 4 {
	case 1: // AF_INET: src, dst (4 bytes each), src port, dst port
		if n < 12 {
			return netip.AddrPort{}, false, fmt.Errorf("%w: v2: IPv4 addresses in %d bytes", ErrProxyHeader, n)
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:])), true, nil
	case 2: // AF_INET6
		if n < 36 {
			return netip.AddrPort{}, false, fmt.Errorf("%w: v2: IPv6 addresses in %d bytes", ErrProxyHeader, n)
		}
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[0:16])), binary.BigEndian.Uint16(body[32:])), true, nil
	}
	return netip.AddrPort{}, false, nil // AF_UNSPEC or AF_UNIX: no IP address
}

// proxyListener reads a PROXY protocol header on every connection from a
// trusted peer and reports the address it carries as the connection's
// RemoteAddr. A connection from any other peer is served as it is: its
// own address is the client's, and a PROXY header it sends is not read
// (it fails as a malformed request).
type proxyListener struct {
	net.Listener
	trusted func(netip.Addr) bool
	timeout time.Duration // to read the header
}

func (l *proxyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil || !l.trusted(ap.Addr().Unmap()) {
		return c, nil
	}
	// The header is read on the connection's first use, in the server's
	// goroutine for it, so that a slow peer does not hold up Accept.
	return &proxyConn{Conn: c, br: bufio.NewReader(c), timeout: l.timeout}, nil
}

// proxyConn is a connection from a trusted proxy whose header is read on
// first use.
type proxyConn struct {
	net.Conn
	br      *bufio.Reader
	timeout time.Duration
	once    sync.Once
	remote  net.Addr // the header's source, or the peer
	err     error    // a bad header: every Read fails
}

func (c *proxyConn) header() {
	c.once.Do(func() {
		c.remote = c.Conn.RemoteAddr()
		c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
		src, ok, err := readProxyHeader(c.br)
		c.Conn.SetReadDeadline(time.Time{})
		if err != nil {
			c.err = err
			c.Conn.Close()
			return
		}
		if ok {
			c.remote = net.TCPAddrFromAddrPort(src)
		}
	})
}

func (c *proxyConn) Read(p []byte) (int, error) {
	c.header()
	if c.err != nil {
		return 0, c.err
	}
	return c.br.Read(p)
}

func (c *proxyConn) RemoteAddr() net.Addr {
	c.header()
	return c.remote
}

// WriteBuffers lets the HTTP/1.1 engine write a header and body in one
// writev(2) through the connection beneath.
func (c *proxyConn) WriteBuffers(v *net.Buffers) (int64, error) { return h1.WriteBuffers(c.Conn, v) }
