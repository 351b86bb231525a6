package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/cluster"
	"github.com/cellar-cache/cellar/store"
	"github.com/prometheus/client_golang/prometheus"
)

// PeerHeader marks a request that one cellar node sends the member that
// owns its key (Options.Cluster). Its value is the sender's address. The
// owner answers such a request from its cache or its origins, coalesced
// with its other misses, and never forwards it to another member, so that
// a request crosses at most one peer hop.
const PeerHeader = "Cellar-Peer"

// peerRequest marks, in a request's context, a request received with
// PeerHeader (which ServeHTTP removes before anything else sees it).
type peerRequest struct{}

// isPeerRequest reports whether r came from another member for a key this
// node owns.
func isPeerRequest(r *http.Request) bool { return r.Context().Value(peerRequest{}) != nil }

// markPeerRequest removes PeerHeader from r, so that it never reaches an
// origin, and returns r marked when it was there.
func markPeerRequest(r *http.Request) *http.Request {
	if r.Header[PeerHeader] == nil {
		return r
	}
	delete(r.Header, PeerHeader)
	return r.WithContext(context.WithValue(r.Context(), peerRequest{}, true))
}

// peers fetches objects from the members that own them.
type peers struct {
	cluster   *cluster.Cluster
	transport *http.Transport
	*peerMetrics
}

// peerMetrics count peer fetches; Options.Metrics shares them between the
// servers that replace one another on reload.
type peerMetrics struct {
	fetches *prometheus.CounterVec // by peer and result: ok, error
	hot     prometheus.Counter     // answers kept as hot copies (Options.LocalHot)
}

func newPeerMetrics() *peerMetrics {
	return &peerMetrics{
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "cellar", Name: "peer_fetches_total",
			Help: "Misses fetched from the cluster member that owns the key, by peer and result: ok (the peer answered), error (it could not be reached or did not answer within the response timeout: the request went to the origin and the peer was marked down; or its body failed or stalled past the between-bytes timeout: the response was cut).",
		}, []string{"peer", "result"}),
		hot: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "cellar", Name: "peer_hot_copies_total",
			Help: "Owners' answers kept in this node's memory tier as hot copies (cluster.local_hot).",
		}),
	}
}

func newPeers(cl *cluster.Cluster, opts *Options, m *peerMetrics) *peers {
	return &peers{
		cluster: cl,
		transport: &http.Transport{
			Proxy:                 nil,
			MaxIdleConnsPerHost:   opts.MaxIdleConnsPerHost,
			IdleConnTimeout:       opts.IdleTimeout,
			ResponseHeaderTimeout: opts.ResponseTimeout,
			DisableCompression:    true,
			DialContext:           dialer(opts.ConnectTimeout),
		},
		peerMetrics: m,
	}
}

// fetchFromPeer answers r, a miss for a key that member o owns, with o's
// answer, and reports whether it did. It does not store the answer: the
// owner keeps the object. When o cannot be reached or sends no response
// header within ResponseTimeout, o is marked down (its keys go to the next
// member for cluster.Config.DownFor) and fetchFromPeer returns false
// without writing anything, so that the caller fetches from the origin
// itself.
//
// Every read of the owner's body must return within BetweenBytes, as an
// origin's must: a stalled owner cuts the client's response (as a stalled
// origin does) instead of holding it forever.
//
// With Options.LocalHot, an answer that may be kept (hotTTL) is also kept
// in this node's memory tier only, fresh for what remains of the owner's
// freshness (store.PutHot), so that the next requests for it here are
// hits.
func (s *Server) fetchFromPeer(w http.ResponseWriter, r *http.Request, o cluster.Owner, key string) bool {
	p := s.peers
	var ticket *store.Ticket // taken before the request: a purge since then wins over the copy
	if s.opts.LocalHot && r.Method == http.MethodGet {
		ticket = s.store.Ticket()
		defer ticket.Release()
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(context.Canceled)
	out, err := http.NewRequestWithContext(ctx, r.Method, o.URL+r.URL.RequestURI(), nil)
	if err != nil {
		return false
	}
	out.Host = r.Host
	out.Header = r.Header.Clone()
	removeHopByHop(out.Header)
	s.setForwarded(out.Header, r)
	out.Header.Set(PeerHeader, p.cluster.Self())
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		if r.Context().Err() != nil {
			return true // the client went away; nobody to answer
		}
		p.fetches.WithLabelValues(o.URL, "error").Inc()
		p.cluster.MarkDown(o.URL, s.now())
		s.log.Warn("peer fetch failed: fetching from the origin, peer marked down", "peer", o.URL, "url", key, "err", err)
		return false
	}
	at := s.now()
	var body io.ReadCloser = newStallReader(ctx, cancel, resp.Body, s.opts.BetweenBytes) // fill.go
	defer body.Close()
	var keep *hotBody
	if ttl, ok := s.hotTTL(resp); ok && ticket != nil {
		keep = &hotBody{ReadCloser: body, buf: make([]byte, 0, resp.ContentLength)}
		keep.ttl, body = ttl, keep
	}
	p.fetches.WithLabelValues(o.URL, "ok").Inc()
	s.metrics.misses.Inc()
	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	removeHopByHop(h)
	// RFC 9211 §2: each cache appends its member, the origin's side first.
	h["Cache-Status"] = append(h["Cache-Status"], s.statusValue(cache.Status{Fwd: "peer", FwdStatus: resp.StatusCode}, key))
	h.Add("Via", viaValue(resp.ProtoMajor, resp.ProtoMinor, s.via))
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead {
		return true
	}
	if err := copyFlush(w, body); err != nil {
		if r.Context().Err() == nil {
			p.fetches.WithLabelValues(o.URL, "error").Inc()
			s.log.Warn("peer body failed", "peer", o.URL, "url", key, "err", err)
		}
		panic(http.ErrAbortHandler)
	}
	if keep != nil && int64(len(keep.buf)) == resp.ContentLength {
		meta := s.policy.PeerMeta(r, resp.StatusCode, resp.Header, keep.ttl, at)
		if s.store.PutHot(ticket, key, meta, keep.buf, at.Add(keep.ttl)) {
			p.hot.Inc()
		}
	}
	return true
}

// hotTTL reports whether resp, an owner's answer to a GET, may be kept as
// a hot copy, and for how long: a complete 200 of a known length that the
// memory tier may hold, the same for every client (no Vary other than
// Accept-Encoding, no content coding, no Set-Cookie), that the owner
// served from its cache or stored (its Cache-Status member says hit or
// stored) with a freshness left (its ttl, RFC 9211 §2.4). Anything else is
// only streamed through.
func (s *Server) hotTTL(resp *http.Response) (time.Duration, bool) {
	h := resp.Header
	if resp.StatusCode != http.StatusOK || resp.ContentLength < 0 || resp.ContentLength > s.store.HotLimit() ||
		h["Content-Encoding"] != nil || h["Set-Cookie"] != nil {
		return 0, false
	}
	// Vary: Accept-Encoding alone is what the owner adds to what it may
	// compress (codings.go); the identity body suits every client.
	for _, l := range h["Vary"] {
		for f := range strings.SplitSeq(l, ",") {
			if f = textproto.TrimString(f); f != "" && !strings.EqualFold(f, "Accept-Encoding") {
				return 0, false
			}
		}
	}
	cs := h["Cache-Status"]
	if len(cs) == 0 {
		return 0, false
	}
	// The owner's member is the last one it sent.
	members := strings.Split(cs[len(cs)-1], ",")
	shared, ttl := false, int64(0)
	for _, param := range strings.Split(members[len(members)-1], ";")[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(param), "=")
		switch k {
		case "hit", "stored":
			shared = true
		case "ttl":
			ttl, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if !shared || ttl <= 0 {
		return 0, false
	}
	return time.Duration(ttl) * time.Second, true
}

// hotBody keeps a copy of the body it passes on, for a hot copy.
type hotBody struct {
	io.ReadCloser
	buf []byte // what was read; its capacity is the announced length
	ttl time.Duration
}

func (b *hotBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if len(b.buf)+n <= cap(b.buf) {
		b.buf = append(b.buf, p[:n]...)
	} else {
		b.buf = b.buf[:0:0] // longer than announced: keep nothing
	}
	return n, err
}

// dialer returns a DialContext with the connect timeout d.
func dialer(d time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return (&net.Dialer{Timeout: d, KeepAlive: 30 * time.Second}).DialContext
}
