package proxy

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/cluster"
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
	fetches   *prometheus.CounterVec // by peer and result: ok, error
}

func newPeers(cl *cluster.Cluster, opts *Options) *peers {
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
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "cellar", Name: "peer_fetches_total",
			Help: "Misses fetched from the cluster member that owns the key, by peer and result: ok (the peer answered), error (it could not be reached or did not answer within the response timeout: the request went to the origin and the peer was marked down).",
		}, []string{"peer", "result"}),
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
func (s *Server) fetchFromPeer(w http.ResponseWriter, r *http.Request, o cluster.Owner, key string) bool {
	p := s.peers
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
	body := newStallReader(ctx, cancel, resp.Body, s.opts.BetweenBytes) // fill.go
	defer body.Close()
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
	return true
}

// dialer returns a DialContext with the connect timeout d.
func dialer(d time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return (&net.Dialer{Timeout: d, KeepAlive: 30 * time.Second}).DialContext
}
