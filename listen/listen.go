// Package listen opens cellar's front listeners and serves one handler on
// them: plain HTTP/1.1 and, optionally, cleartext HTTP/2 (h2c, RFC 9113
// §3.3 prior knowledge); TLS with a certificate per server name (SNI) and
// HTTP/2; HTTP/3 (RFC 9114) on the same port over QUIC, advertised with
// Alt-Svc (RFC 7838); redirects from HTTP to HTTPS; and the PROXY protocol
// (v1 and v2) from trusted load balancers.
package listen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/cellar-cache/cellar/internal/h1"
	"github.com/cellar-cache/cellar/internal/poller"
)

// The HTTP/1.x server engines (Options.Engine).
const (
	// EngineCellar serves HTTP/1.x with cellar's own engine
	// (internal/h1), about half net/http's CPU per request.
	EngineCellar = "cellar"
	// EngineNetHTTP serves every listener with net/http.
	EngineNetHTTP = "net/http"
)

// ValidEngine reports whether e names an engine ("" is the default,
// EngineCellar).
func ValidEngine(e string) bool { return e == "" || e == EngineCellar || e == EngineNetHTTP }

// Listener is one address cellar accepts clients on.
type Listener struct {
	// Address is host:port; required.
	Address string
	// Certs, when not empty, terminate TLS: the certificate whose names
	// match the client's server name (SNI) is presented, else the first.
	Certs []CertFiles
	// RedirectHTTPS answers every request on this plain listener with a
	// permanent redirect (308) to the same URL on the first TLS listener.
	RedirectHTTPS bool
	// H2C also speaks HTTP/2 without TLS (prior knowledge, as
	// curl --http2-prior-knowledge does) on a plain listener.
	H2C bool
	// HTTP3 also serves HTTP/3 over QUIC on the same port (UDP) of a TLS
	// listener, and advertises it in Alt-Svc on the TLS listener's
	// responses.
	HTTP3 bool
	// ProxyProtocol reads a PROXY protocol v1 or v2 header on every
	// connection from a trusted proxy (Options.Trusted) and takes the
	// client's address from it; connections from other peers are served
	// as they are.
	ProxyProtocol bool
}

// CertFiles is a PEM certificate chain and its private key.
type CertFiles struct{ Cert, Key string }

// Options configure a Group.
type Options struct {
	Listeners []Listener
	// Handler answers every request (except redirected ones).
	Handler http.Handler
	// Trusted reports the peers allowed to send a PROXY protocol header;
	// nil trusts nobody.
	Trusted func(netip.Addr) bool
	// ReadHeaderTimeout bounds reading a request's header, and a PROXY
	// protocol header; default 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes idle client connections; default 90s.
	IdleTimeout time.Duration
	// ErrorLog receives the servers' connection errors; nil: the log
	// package's standard logger.
	ErrorLog *log.Logger
	// Wrap, when set, wraps every TCP listener beneath the PROXY protocol
	// and TLS (connection limits); Configure, when set, is applied to
	// every HTTP server before it serves (header limits).
	Wrap      func(net.Listener) net.Listener
	Configure func(*http.Server)
	// Engine serves HTTP/1.x: EngineCellar (the default, "") or
	// EngineNetHTTP. With EngineCellar, plain listeners without H2C are
	// cellar's engine's, and on TLS listeners the connections that choose
	// HTTP/1.1 by ALPN (the handshake is done in a goroutine per
	// connection) while HTTP/2 ones go to net/http; h2c listeners are
	// net/http's. Both engines take their settings from the same
	// http.Server (after Configure).
	Engine string
	// Poller makes cellar's engine's plain keep-alive connections wait for
	// their next request on an epoll instance of the group's own
	// (internal/poller: woken in the order their bytes arrived, with no
	// read(2) that fails first); off, or where epoll is missing, they wait
	// in a read.
	Poller bool
	// Listen, when set, binds each TCP listener in place of net.Listen; a
	// config reload passes one that hands over the sockets of addresses
	// already bound, so that they never stop accepting.
	Listen func(network, address string) (net.Listener, error)
}

// EngineFramer is implemented by a listener from Options.Wrap that
// follows the request framing of its plain connections for net/http, which
// serves a request with both Content-Length and Transfer-Encoding where
// RFC 9112 §6.1 says to close (proxy.Server.Listener). Open calls
// EngineFramesRequests, before serving, on a plain listener whose every
// connection cellar's engine serves: that engine refuses such a request
// itself, so the listener need not follow the bytes.
type EngineFramer interface {
	EngineFramesRequests()
}

// Group is a set of open listeners serving one handler.
type Group struct {
	servers []*server
	h3      []*h3server
	poller  *poller.Poller // Options.Poller's, or nil
}

// server is one TCP listener and its HTTP server.
type server struct {
	ln     net.Listener
	srv    *http.Server // the settings, and the server unless h1 is set
	h1     *h1.Server   // cellar's engine, serving with srv's settings
	split  *tlsSplit    // TLS with h1: HTTP/1.1 to h1, HTTP/2 to srv
	scheme string
}

// h3server is one HTTP/3 server and its UDP socket.
type h3server struct {
	conn net.PacketConn
	srv  *http3.Server
}

// Open binds every listener and loads its certificates; on any error
// nothing stays open. The error names the listener by index and address.
func Open(opts Options) (*Group, error) {
	if opts.ReadHeaderTimeout == 0 {
		opts.ReadHeaderTimeout = 10 * time.Second
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 90 * time.Second
	}
	if opts.Trusted == nil {
		opts.Trusted = func(netip.Addr) bool { return false }
	}
	g := &Group{}
	if err := g.open(opts); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

func (g *Group) open(opts Options) error {
	// Bind everything first: a redirect needs the TLS listener's port,
	// which an address with port 0 only gets now.
	lns := make([]net.Listener, len(opts.Listeners))
	tcs := make([]*tls.Config, len(opts.Listeners))
	httpsPort := ""
	for i, l := range opts.Listeners {
		at := fmt.Sprintf("listeners[%d] %s", i, l.Address)
		if len(l.Certs) > 0 {
			var err error
			if tcs[i], err = loadCerts(l.Certs); err != nil {
				return fmt.Errorf("%s: tls: %w", at, err)
			}
		}
		bind := net.Listen
		if opts.Listen != nil {
			bind = opts.Listen
		}
		ln, err := bind("tcp", l.Address)
		if err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
		g.servers = append(g.servers, &server{ln: ln, scheme: "http"}) // closed by close on error
		if tcs[i] != nil && httpsPort == "" {
			_, httpsPort, _ = net.SplitHostPort(ln.Addr().String())
		}
		if opts.Wrap != nil {
			ln = opts.Wrap(ln)
		}
		if l.ProxyProtocol {
			ln = &proxyListener{Listener: ln, trusted: opts.Trusted, timeout: opts.ReadHeaderTimeout}
		}
		lns[i] = ln
	}
	for i, l := range opts.Listeners {
		at := fmt.Sprintf("listeners[%d] %s", i, l.Address)
		s, tc := g.servers[i], tcs[i]
		s.ln = lns[i]
		h := opts.Handler
		if l.RedirectHTTPS {
			if httpsPort == "" {
				return fmt.Errorf("%s: redirect_https needs a listener with tls", at)
			}
			h = redirectHTTPS(httpsPort)
		}
		s.srv = &http.Server{
			Handler:           h,
			ReadHeaderTimeout: opts.ReadHeaderTimeout,
			IdleTimeout:       opts.IdleTimeout,
			ErrorLog:          opts.ErrorLog,
			Protocols:         &http.Protocols{},
		}
		s.srv.Protocols.SetHTTP1(true)
		if opts.Configure != nil {
			opts.Configure(s.srv)
		}
		if tc == nil {
			s.srv.Protocols.SetUnencryptedHTTP2(l.H2C)
			if !l.H2C && opts.Engine != EngineNetHTTP {
				s.h1 = h1.New(s.srv)
				g.usePoller(opts, s.h1)
				if f, ok := s.ln.(EngineFramer); ok {
					f.EngineFramesRequests()
				}
			}
			continue
		}
		s.srv.Protocols.SetHTTP2(true)
		s.srv.TLSConfig = tc
		s.scheme = "https"
		if opts.Engine != EngineNetHTTP {
			s.h1 = h1.New(s.srv)
			s.split = newTLSSplit(s.ln, s.srv, opts.ReadHeaderTimeout)
		}
		if !l.HTTP3 {
			continue
		}
		// The same port over UDP.
		addr := s.ln.Addr().(*net.TCPAddr)
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: addr.IP, Port: addr.Port})
		if err != nil {
			return fmt.Errorf("%s: http3: %w", at, err)
		}
		h3 := &http3.Server{Handler: opts.Handler, TLSConfig: http3.ConfigureTLSConfig(tc.Clone()), IdleTimeout: opts.IdleTimeout, Port: addr.Port}
		g.h3 = append(g.h3, &h3server{conn: conn, srv: h3})
		s.srv.Handler = altSvc(h3, h)
	}
	return nil
}

// loadCerts reads every certificate pair. Go's TLS server picks, per
// handshake, the first certificate valid for the client's server name.
func loadCerts(files []CertFiles) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	for _, f := range files {
		c, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, err
		}
		tc.Certificates = append(tc.Certificates, c)
	}
	return tc, nil
}

// redirectHTTPS answers with a permanent redirect to the request's URL on
// HTTPS at port (omitted when 443). 308 keeps the method and body.
func redirectHTTPS(port string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if port != "443" {
			host = net.JoinHostPort(host, port)
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}

// altSvc adds the HTTP/3 Alt-Svc field to every response of h.
func altSvc(h3 *http3.Server, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h3.SetQUICHeaders(w.Header())
		h.ServeHTTP(w, r)
	})
}

// Addrs are the bound addresses, in the listeners' order, with their
// scheme: "http://127.0.0.1:8080".
func (g *Group) Addrs() []string {
	var out []string
	for _, s := range g.servers {
		out = append(out, s.scheme+"://"+s.ln.Addr().String())
	}
	return out
}

// Serve serves every listener until ctx ends or one fails, then shuts them
// all down, letting requests in flight finish for up to grace. It returns
// the first failure, or nil after ctx ended.
func (g *Group) Serve(ctx context.Context, grace time.Duration) error {
	errc := make(chan error, len(g.servers)+len(g.h3))
	for _, s := range g.servers {
		go func() {
			if s.split != nil {
				errc <- s.split.serve(s.h1, s.srv)
			} else if s.h1 != nil {
				errc <- s.h1.Serve(s.ln)
			} else if s.srv.TLSConfig != nil {
				errc <- s.srv.ServeTLS(s.ln, "", "")
			} else {
				errc <- s.srv.Serve(s.ln)
			}
		}()
	}
	for _, h := range g.h3 {
		go func() { errc <- h.srv.Serve(h.conn) }()
	}
	n := len(g.servers) + len(g.h3)
	var first error
	select {
	case first = <-errc:
		n--
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range g.servers {
		wg.Go(func() {
			if s.split != nil {
				// Handshakes in progress reach their engine first.
				s.split.close(sctx)
			}
			var engines sync.WaitGroup
			if s.h1 != nil {
				engines.Go(func() {
					if s.h1.Shutdown(sctx) != nil {
						s.h1.Close()
					}
				})
			}
			if s.h1 == nil || s.split != nil {
				engines.Go(func() {
					if s.srv.Shutdown(sctx) != nil {
						s.srv.Close()
					}
				})
			}
			engines.Wait()
		})
	}
	for _, h := range g.h3 {
		wg.Go(func() {
			if h.srv.Shutdown(sctx) != nil {
				h.srv.Close()
			}
		})
	}
	wg.Wait()
	for range n {
		if err := <-errc; first == nil && !isClosed(err) {
			first = err
		}
	}
	g.Close()
	if isClosed(first) {
		first = nil
	}
	return first
}

func isClosed(err error) bool {
	return err == nil || errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) || errors.Is(err, quic.ErrServerClosed)
}

// usePoller gives h the group's poller when opts ask for one, starting
// it on first use; without epoll, h waits in its reads.
func (g *Group) usePoller(opts Options, h *h1.Server) {
	if !opts.Poller {
		return
	}
	if g.poller == nil {
		p, err := poller.New()
		if err != nil {
			return
		}
		g.poller = p
	}
	h.SetPoller(g.poller)
}

// Poller reports whether the group's plain connections wait on a poller
// (Options.Poller, where epoll exists) and how many are registered with
// it now.
func (g *Group) Poller() (on bool, conns int) {
	if g.poller == nil {
		return false, 0
	}
	return true, g.poller.Len()
}

// Close releases the sockets of a group that is not serving (idempotent).
func (g *Group) Close() {
	if g.poller != nil {
		g.poller.Close() // wakes the connections still waiting on it
	}
	for _, s := range g.servers {
		s.ln.Close()
	}
	for _, h := range g.h3 {
		h.conn.Close()
	}
}
