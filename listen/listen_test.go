package listen

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/cellar-cache/cellar/internal/leaktest"
	"github.com/cellar-cache/cellar/internal/testcert"
)

// testCert writes a self-signed certificate for names into dir and returns
// its files and the certificate.
func testCert(t *testing.T, dir string, names ...string) (CertFiles, *x509.Certificate) {
	t.Helper()
	cert, key, c := testcert.Write(t, dir, names[0], names...)
	return CertFiles{Cert: cert, Key: key}, c
}

// echoAddr answers with the client address and protocol the server saw.
var echoAddr = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "%s %s", r.RemoteAddr, r.Proto)
})

// startGroup opens and serves a group until the test ends.
func startGroup(t *testing.T, opts Options) *Group {
	t.Helper()
	if opts.Handler == nil {
		opts.Handler = echoAddr
	}
	g, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return g
}

func readAll(t *testing.T, resp *http.Response, err error) string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTLSListenerPicksTheCertificateBySNIAndAdvertisesHTTP3 covers SNI with
// two certificates, HTTP/2 over TLS, Alt-Svc, and HTTP/3 with quic-go's
// client on the same port.
func TestTLSListenerPicksTheCertificateBySNIAndAdvertisesHTTP3(t *testing.T) {
	leaktest.Check(t)
	dir := t.TempDir()
	a, certA := testCert(t, dir, "a.test")
	b, certB := testCert(t, dir, "b.test")
	g := startGroup(t, Options{Listeners: []Listener{{Address: "127.0.0.1:0", Certs: []CertFiles{a, b}, HTTP3: true}}})
	addr := strings.TrimPrefix(g.Addrs()[0], "https://")
	roots := x509.NewCertPool()
	roots.AddCert(certA)
	roots.AddCert(certB)

	for _, tc := range []struct {
		name string
		want *x509.Certificate
	}{{"a.test", certA}, {"b.test", certB}} {
		tr := &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: tc.name},
			ForceAttemptHTTP2: true,
		}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get("https://" + addr + "/")
		body := readAll(t, resp, err)
		if got := resp.TLS.PeerCertificates[0]; !got.Equal(tc.want) {
			t.Errorf("SNI %s: served the certificate for %v", tc.name, got.DNSNames)
		}
		if !strings.HasSuffix(body, "HTTP/2.0") {
			t.Errorf("SNI %s: protocol %q; want HTTP/2.0 over TLS", tc.name, body)
		}
		port := addr[strings.LastIndex(addr, ":")+1:]
		if alt := resp.Header.Get("Alt-Svc"); !strings.Contains(alt, `h3=":`+port+`"`) {
			t.Errorf("Alt-Svc = %q; want h3 on port %s", alt, port)
		}
	}

	h3 := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "a.test"}}
	defer h3.Close()
	resp, err := (&http.Client{Transport: h3, Timeout: 60 * time.Second}).Get("https://" + addr + "/q")
	if body := readAll(t, resp, err); !strings.HasSuffix(body, "HTTP/3.0") {
		t.Errorf("over QUIC: %q; want HTTP/3.0", body)
	}
}

// TestH2CListenerSpeaksHTTP2WithoutTLS: prior-knowledge HTTP/2 over
// cleartext, as curl --http2-prior-knowledge; HTTP/1.1 still works.
func TestH2CListenerSpeaksHTTP2WithoutTLS(t *testing.T) {
	leaktest.Check(t)
	g := startGroup(t, Options{Listeners: []Listener{{Address: "127.0.0.1:0", H2C: true}, {Address: "127.0.0.1:0"}}})
	h2c := &http.Transport{Protocols: &http.Protocols{}}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	defer h2c.CloseIdleConnections()
	resp, err := (&http.Client{Transport: h2c}).Get(g.Addrs()[0] + "/")
	if body := readAll(t, resp, err); !strings.HasSuffix(body, "HTTP/2.0") {
		t.Errorf("h2c listener: %q; want HTTP/2.0", body)
	}
	resp, err = http.Get(g.Addrs()[0] + "/")
	if body := readAll(t, resp, err); !strings.HasSuffix(body, "HTTP/1.1") {
		t.Errorf("h2c listener, HTTP/1.1 client: %q", body)
	}
	if _, err := (&http.Client{Transport: h2c}).Get(g.Addrs()[1] + "/"); err == nil {
		t.Error("a listener without h2c answered prior-knowledge HTTP/2")
	}
}

// TestRedirectHTTPSListener: a plain listener with redirect_https answers
// 308 to the same URL on the TLS listener's port.
func TestRedirectHTTPSListener(t *testing.T) {
	leaktest.Check(t)
	c, _ := testCert(t, t.TempDir(), "a.test")
	g := startGroup(t, Options{Listeners: []Listener{
		{Address: "127.0.0.1:0", RedirectHTTPS: true},
		{Address: "127.0.0.1:0", Certs: []CertFiles{c}},
	}})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(g.Addrs()[1], "https://"))
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodPost, g.Addrs()[0]+"/a/b?x=1", nil)
	req.Host = "www.example.com:8080"
	resp, err := client.Do(req)
	readAll(t, resp, err)
	if want := "https://www.example.com:" + port + "/a/b?x=1"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("got %d %q; want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
}

// proxyV2 builds a PROXY protocol v2 header for a TCP connection from src.
func proxyV2(src netip.AddrPort) []byte {
	b := append([]byte{}, v2Signature...)
	if src.Addr().Is4() {
		b = append(b, 0x21, 0x11, 0, 12)
		a := src.Addr().As4()
		b = append(b, a[:]...)
		b = append(b, 127, 0, 0, 1)
	} else {
		b = append(b, 0x21, 0x21, 0, 36)
		a := src.Addr().As16()
		b = append(b, a[:]...)
		b = append(b, netip.IPv6Loopback().AsSlice()...)
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, 443)
}

// TestProxyProtocolFromTrustedPeers: v1 and v2 headers written by the test
// set the client address; from an untrusted peer the header is not read.
func TestProxyProtocolFromTrustedPeers(t *testing.T) {
	leaktest.Check(t)
	loopback := func(a netip.Addr) bool { return a.IsLoopback() }
	trusted := startGroup(t, Options{Trusted: loopback, Listeners: []Listener{{Address: "127.0.0.1:0", ProxyProtocol: true}}})
	untrusted := startGroup(t, Options{Listeners: []Listener{{Address: "127.0.0.1:0", ProxyProtocol: true}}})
	// send writes header and a request. A header the server does not
	// read as one is a request line of its own: then only the blank line
	// that ends that request is sent, so that the server closes the
	// connection with nothing left unread (which would reset it and could
	// discard the 400 before the client reads it).
	send := func(g *Group, header []byte, request string) string {
		conn, err := net.Dial("tcp", strings.TrimPrefix(g.Addrs()[0], "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		conn.Write(header)
		io.WriteString(conn, request)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprint(resp.StatusCode, " ", readAll(t, resp, nil))
	}
	for _, tc := range []struct {
		name   string
		g      *Group
		header []byte
		want   string
	}{
		{"v1 tcp4", trusted, []byte("PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n"), "200 203.0.113.7:5555 HTTP/1.1"},
		{"v1 tcp6", trusted, []byte("PROXY TCP6 2001:db8::7 ::1 5555 80\r\n"), "200 [2001:db8::7]:5555 HTTP/1.1"},
		{"v1 unknown", trusted, []byte("PROXY UNKNOWN\r\n"), "200 127.0.0.1:"},
		{"v2 ipv4", trusted, proxyV2(netip.MustParseAddrPort("198.51.100.9:4444")), "200 198.51.100.9:4444 HTTP/1.1"},
		{"v2 ipv6", trusted, proxyV2(netip.MustParseAddrPort("[2001:db8::9]:4444")), "200 [2001:db8::9]:4444 HTTP/1.1"},
		{"missing header from a trusted peer", trusted, nil, "error"},
		{"untrusted peer's header is not read", untrusted, []byte("PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n"), "400"},
		{"untrusted peer without header", untrusted, nil, "200 127.0.0.1:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			request := "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
			if tc.want == "400" {
				request = "\r\n"
			}
			if got := send(tc.g, tc.header, request); !strings.HasPrefix(got, tc.want) {
				t.Errorf("got %q; want it to start with %q", got, tc.want)
			}
		})
	}
}

// TestStalledProxyHeaderDoesNotHoldUpOthers: a trusted peer that sends no
// PROXY header keeps only its own connection waiting (the header is read
// in the connection's goroutine), with either engine.
func TestStalledProxyHeaderDoesNotHoldUpOthers(t *testing.T) {
	leaktest.Check(t)
	loopback := func(a netip.Addr) bool { return a.IsLoopback() }
	for _, engine := range []string{EngineCellar, EngineNetHTTP} {
		t.Run(engine, func(t *testing.T) {
			g := startGroup(t, Options{Trusted: loopback, Engine: engine, Listeners: []Listener{{Address: "127.0.0.1:0", ProxyProtocol: true}}})
			addr := strings.TrimPrefix(g.Addrs()[0], "http://")
			stalled, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer stalled.Close()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(conn, "PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("the second connection was not served: %v", err)
			}
			if got := readAll(t, resp, nil); !strings.HasPrefix(got, "203.0.113.7:5555") {
				t.Errorf("answer %q", got)
			}
		})
	}
}

// TestOpenNamesTheBadListener: an unloadable certificate, a busy address
// and redirect_https without a TLS listener are errors naming the listener.
func TestOpenNamesTheBadListener(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	missing := filepath.Join(t.TempDir(), "none.pem")
	for _, tc := range []struct {
		name string
		ls   []Listener
		want string
	}{
		{"certificate", []Listener{{Address: "127.0.0.1:0"}, {Address: "127.0.0.1:0", Certs: []CertFiles{{missing, missing}}}}, "listeners[1] 127.0.0.1:0: tls"},
		{"busy", []Listener{{Address: busy.Addr().String()}}, "listeners[0] " + busy.Addr().String()},
		{"redirect", []Listener{{Address: "127.0.0.1:0", RedirectHTTPS: true}}, "redirect_https needs a listener with tls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := Open(Options{Listeners: tc.ls, Handler: echoAddr})
			if err == nil {
				g.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q; want it to mention %q", err, tc.want)
			}
		})
	}
}

// FuzzReadProxyHeader: no input makes the parser panic or read past the
// header's stated length.
func FuzzReadProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\nGET"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(proxyV2(netip.MustParseAddrPort("198.51.100.9:4444")))
	f.Add(proxyV2(netip.MustParseAddrPort("[2001:db8::9]:4444")))
	f.Add(append(append([]byte{}, v2Signature...), 0x20, 0x00, 0, 0))
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReader(strings.NewReader(string(in)))
		src, ok, err := readProxyHeader(br)
		if err != nil && (ok || src.IsValid()) {
			t.Fatalf("error %v with an address %v", err, src)
		}
	})
}
