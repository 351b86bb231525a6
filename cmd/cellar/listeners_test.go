package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/cellar-cache/cellar/internal/proxytest"
)

// startServeConfig runs serve with only a config file (no -listen flag, so
// that the file's listeners apply) and returns its listeners.
func startServeConfig(t *testing.T, config string) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan addrs, 1)
	log := &proxytest.SyncBuffer{}
	args := []string{"-admin", "127.0.0.1:0", "-data-dir", t.TempDir(), "-config", writeConfig(t, config)}
	go func() { done <- serve(ctx, args, io.Discard, log, func(a addrs) { ready <- a }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case a := <-ready:
		return a.listeners
	case err := <-done:
		done <- nil // reported here: the cleanup must not wait for it again
		t.Fatalf("serve: %v\n%s", err, log)
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not become ready in 20s")
	}
	return nil
}

// TestServeListenersEndToEnd: one cellar with an h2c listener, a redirect
// listener and a TLS listener with HTTP/3, each in front of one origin.
func TestServeListenersEndToEnd(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/pp" {
			io.WriteString(w, "client "+r.Header.Get("X-Real-IP")+" via "+r.Header.Get("X-Forwarded-For"))
			return
		}
		io.WriteString(w, "from the origin")
	}))
	defer origin.Close()
	dir := t.TempDir()
	tlsOrigin := httptest.NewTLSServer(http.NotFoundHandler()) // for its certificate, valid for example.com
	tlsOrigin.Close()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(t, cert, "CERTIFICATE", tlsOrigin.TLS.Certificates[0].Certificate[0])
	k, err := x509.MarshalPKCS8PrivateKey(tlsOrigin.TLS.Certificates[0].PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, key, "PRIVATE KEY", k)
	ls := startServeConfig(t, "origin: "+origin.URL+`
listeners:
  - address: 127.0.0.1:0
    h2c: true
  - address: 127.0.0.1:0
    redirect_https: true
  - address: 127.0.0.1:0
    tls: {cert: `+cert+`, key: `+key+`}
    http3: true
  - address: 127.0.0.1:0
    proxy_protocol: true
trusted_proxies: [127.0.0.1]
`)
	if len(ls) != 4 || !strings.HasPrefix(ls[2], "https://") {
		t.Fatalf("listeners %v", ls)
	}

	h2c := &http.Transport{Protocols: &http.Protocols{}}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	defer h2c.CloseIdleConnections()
	resp, err := (&http.Client{Transport: h2c}).Get(ls[0] + "/h2c")
	if body := read(t, resp, err); resp.ProtoMajor != 2 || body != "from the origin" {
		t.Errorf("h2c: %s %q", resp.Proto, body)
	}

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Get(ls[1] + "/r?x=1")
	read(t, resp, err)
	if loc := resp.Header.Get("Location"); resp.StatusCode != 308 || !strings.HasPrefix(loc, "https://127.0.0.1:") || !strings.HasSuffix(loc, "/r?x=1") {
		t.Errorf("redirect: %d %q", resp.StatusCode, loc)
	}

	roots := x509.NewCertPool()
	roots.AddCert(tlsOrigin.Certificate())
	tc := &tls.Config{RootCAs: roots, ServerName: "example.com"}
	h2 := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
	defer h2.CloseIdleConnections()
	resp, err = (&http.Client{Transport: h2}).Get(ls[2] + "/tls")
	if body := read(t, resp, err); resp.ProtoMajor != 2 || body != "from the origin" || !strings.Contains(resp.Header.Get("Alt-Svc"), "h3=") {
		t.Errorf("TLS: %s %q Alt-Svc %q", resp.Proto, body, resp.Header.Get("Alt-Svc"))
	}
	h3 := &http3.Transport{TLSClientConfig: tc}
	defer h3.Close()
	resp, err = (&http.Client{Transport: h3, Timeout: 10 * time.Second}).Get(ls[2] + "/h3")
	if body := read(t, resp, err); resp.ProtoMajor != 3 || body != "from the origin" {
		t.Errorf("HTTP/3: %s %q", resp.Proto, body)
	}

	// A load balancer on 127.0.0.1 (trusted) sends a PROXY v1 header.
	conn, err := net.Dial("tcp", hostPort(ls[3]))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\nPOST /pp HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
	resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
	if body := read(t, resp, err); body != "client 203.0.113.7 via 203.0.113.7" {
		t.Errorf("PROXY protocol: origin saw %q; want the client 203.0.113.7", body)
	}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, resp *http.Response, err error) string {
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

// TestIdleTimeoutClosesClientConnections: timeouts.idle bounds how long a
// client's keep-alive connection waits for its next request, on both
// HTTP/1.x engines, cellar's with its keep-alive poller (the default) and
// without (it used to reach only the upstream connections, and clients
// kept listen's default of 90 s).
func TestIdleTimeoutClosesClientConnections(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer origin.Close()
	for _, server := range []string{"{engine: cellar}", "{engine: cellar, poller: false}", "{engine: net/http}"} {
		t.Run(strings.Trim(strings.ReplaceAll(server, "/", ""), "{}"), func(t *testing.T) {
			ls := startServeConfig(t, "origin: "+origin.URL+`
server: `+server+`
listeners:
  - address: 127.0.0.1:0
timeouts:
  idle: 400ms
`)
			c, err := net.Dial("tcp", strings.TrimPrefix(ls[0], "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// The server starts its idle wait once it has written the
			// response, before this client has read it: timed from the
			// request, the wait seen here is never shorter than the
			// server's (from the response read, it was, by the time the
			// client took to be scheduled: 396-399.9 ms on a loaded machine).
			sent := time.Now()
			if _, err := io.WriteString(c, "GET /idle HTTP/1.1\r\nHost: example.com\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "ok" || resp.Close {
				t.Fatalf("got %d %q (close %v), want a kept-alive 200 ok", resp.StatusCode, body, resp.Close)
			}
			// The default (90 s) would outlast this bound.
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			n, err := br.Read(make([]byte, 1))
			if n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("idle connection: read %d bytes, %v; want the server to close it after timeouts.idle", n, err)
			}
			if waited := time.Since(sent); waited < 400*time.Millisecond {
				t.Errorf("closed %v after the request, before timeouts.idle (400ms)", waited)
			}
		})
	}
}
