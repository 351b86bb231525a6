package listen

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/internal/leaktest"
)

// TestTLSListenerServesHTTP1WithTheEngineAndHTTP2WithNetHTTP: on a TLS
// listener, a client that chooses HTTP/1.1 by ALPN is served by cellar's
// engine (which refuses a request with both Content-Length and
// Transfer-Encoding, where net/http serves it), with the connection's TLS
// state on the request; one that chooses h2 is served by net/http's
// HTTP/2; a client that never completes its handshake holds up nobody.
func TestTLSListenerServesHTTP1WithTheEngineAndHTTP2WithNetHTTP(t *testing.T) {
	leaktest.Check(t)
	files, roots := testRoots(t, "a.test")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		sni := ""
		if r.TLS != nil {
			sni = r.TLS.ServerName
		}
		fmt.Fprintf(w, "%s sni=%s", r.Proto, sni)
	})
	for _, engine := range []string{EngineCellar, EngineNetHTTP} {
		t.Run(engine, func(t *testing.T) {
			// A handshake has a minute; the clients wait 20 s at most.
			g := startGroup(t, Options{Engine: engine, Handler: h, ReadHeaderTimeout: time.Minute,
				Listeners: []Listener{{Address: "127.0.0.1:0", Certs: []CertFiles{files}}}})
			addr := strings.TrimPrefix(g.Addrs()[0], "https://")

			// A client that never sends its ClientHello: the others are
			// served meanwhile.
			silent, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer silent.Close()

			h2 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "a.test"}, ForceAttemptHTTP2: true}
			defer h2.CloseIdleConnections()
			resp, err := (&http.Client{Transport: h2, Timeout: 20 * time.Second}).Get("https://" + addr + "/")
			if body := readAll(t, resp, err); body != "HTTP/2.0 sni=a.test" {
				t.Errorf("h2 client: %q; want HTTP/2.0 sni=a.test", body)
			}

			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 20 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: "a.test", NextProtos: []string{"http/1.1"}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			br := bufio.NewReader(c)
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
			resp, err = http.ReadResponse(br, nil)
			if body := readAll(t, resp, err); body != "HTTP/1.1 sni=a.test" {
				t.Errorf("HTTP/1.1 client: %q; want HTTP/1.1 sni=a.test", body)
			}
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
			resp, err = http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			want := http.StatusBadRequest // cellar's engine
			if engine == EngineNetHTTP {
				want = http.StatusOK
			}
			if resp.StatusCode != want {
				t.Errorf("a request with Content-Length and Transfer-Encoding: %d; want %d", resp.StatusCode, want)
			}
		})
	}
}

// TestShutdownLetsAHandshakeInProgressFinish: a TLS connection accepted
// before shutdown, its handshake not yet done, completes it and gets its
// answer (a client that connected just before a reload), as under
// net/http.
func TestShutdownLetsAHandshakeInProgressFinish(t *testing.T) {
	leaktest.Check(t)
	files, roots := testRoots(t, "a.test")
	g, err := Open(Options{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "answered")
	}), ReadHeaderTimeout: time.Minute, Listeners: []Listener{{Address: "127.0.0.1:0", Certs: []CertFiles{files}}}})
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(g.Addrs()[0], "https://")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx, time.Minute) }()

	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	split := g.servers[0].split
	waitUntil(t, "the connection is in its handshake", func() bool {
		split.mu.Lock()
		defer split.mu.Unlock()
		return len(split.shaking) == 1
	})
	cancel()
	waitUntil(t, "the listener is closed", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	c := tls.Client(raw, &tls.Config{RootCAs: roots, ServerName: "a.test", NextProtos: []string{"http/1.1"}})
	c.SetDeadline(time.Now().Add(time.Minute))
	if err := c.Handshake(); err != nil {
		t.Fatalf("handshake after shutdown began: %v", err)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if body := readAll(t, resp, err); body != "answered" {
		t.Errorf("answer %q", body)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// waitUntil polls cond every few milliseconds for up to a minute.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testRoots writes a certificate for name and returns its files and a
// pool that trusts it.
func testRoots(t *testing.T, name string) (CertFiles, *x509.CertPool) {
	t.Helper()
	files, cert := testCert(t, t.TempDir(), name)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return files, roots
}
