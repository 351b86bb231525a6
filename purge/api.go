// Package purge is cellar's purge API: it removes (or, soft, invalidates)
// stored responses by URL, URL prefix or tag, on the authenticated admin
// listener (POST /purge/url, /purge/prefix, /purge/tag, /purge/all, and
// /purge/regex, which bans by regular expression lazily) and
// through the PURGE method on the main listener (the convention of Varnish,
// Squid and nginx's purge module). A soft purge marks objects Invalid, so
// that they are revalidated before reuse (RFC 9111 §4.3) and may still be
// served stale while that happens or when the origin fails (RFC 5861 §3,
// §4). With a purge stream (Options.Stream, NATS JetStream) a purge is
// published to it and every node, this one included, applies it from
// there (Apply), also a node that was down when it was made; without
// one, a purge that succeeds locally is forwarded to the other nodes of a
// cluster (Options.Peers), concurrently and best effort, and the answer
// reports each peer's result. The command-line client is RunCLI.
package purge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/cluster/purgestream"
	"github.com/cellar-cache/cellar/store"
)

// Sentinel errors, for errors.Is.
var (
	// ErrNoToken is wrapped by New when Options.Tokens is empty: the admin
	// API never runs unauthenticated.
	ErrNoToken = errors.New("purge: no token configured")
	// ErrBadRequest is wrapped by the errors that describe a malformed
	// purge request body.
	ErrBadRequest = errors.New("purge: bad request")
)

// EnvPeerToken is the environment variable that supplies
// Options.PeerToken to `cellar serve` when the config file sets none.
const EnvPeerToken = "CELLAR_PURGE_PEER_TOKEN"

// ForwardedField marks a purge that a peer forwarded: a request that
// carries it with the value "1" (and passes authorization) is purged
// locally and not forwarded again, so that nodes listing each other never
// loop.
const ForwardedField = "Cellar-Purge-Forwarded"

// Options configure an API. Zero values mean the documented default; call
// EnsureDefaults, then Validate (New does both).
type Options struct {
	// Tokens are the accepted bearer tokens of the admin API; at least one
	// is required (see ResolveTokens). Compared in constant time.
	Tokens []string
	// Networks are the client networks from which the PURGE method is
	// accepted on the main listener, matched against the connection's
	// peer address (forwarding fields are not trusted). Default loopback
	// only: 127.0.0.0/8 and ::1/128.
	Networks []netip.Prefix
	// MaxBodyBytes bounds the body of an admin request. Default 1 MiB.
	MaxBodyBytes int64
	// Logger receives one audit line per purge. Default slog.Default().
	Logger *slog.Logger

	// Peers are the admin base URLs of the other nodes of a cluster, e.g.
	// http://10.0.0.2:8081 (see CheckPeerURL). A purge that succeeds
	// locally, on the admin API or through the PURGE method, is forwarded
	// to every peer's /purge/<kind> concurrently; a path in a peer URL is
	// kept as a prefix. Default none: purges stay local.
	Peers []string
	// PeerToken is the bearer token sent to Peers; each peer must accept
	// it. Default Tokens[0], since a cluster usually shares its tokens.
	PeerToken string
	// PeerTimeout bounds the whole fan-out of one purge, from the first
	// connection to the last answer; a peer that has not answered by then
	// has failed. Default 5s.
	PeerTimeout time.Duration
	// Key returns the cache key of an absolute URL, as the proxy keys a
	// GET of it (cache.Policy.KeyFromURL, which applies the configured
	// key options). Default cache.KeyFromURL: the normalized URL.
	Key func(rawURL string) (string, error)
	// Client sends the forwarded purges; it must be safe for concurrent
	// use. Default (nil) a dedicated client, never http.DefaultClient,
	// that follows no redirects and ignores HTTP_PROXY: peers are reached
	// directly.
	Client *http.Client
	// Metrics are the collectors the API counts into (NewMetrics). APIs
	// that replace one another on a config reload share one set,
	// registered once. Nil: a new set (API.Metrics returns it).
	Metrics *Metrics
	// Stream, when set, carries every purge to every node of the
	// cluster (cluster/purgestream): a purge request is published to it
	// instead of applied here, answered once the stream has stored it,
	// and applied on every node, this one included, by Apply. Peers must
	// then be empty. Default nil: purges are applied here (and sent to
	// Peers).
	Stream *purgestream.Stream
}

// EnsureDefaults fills in the documented defaults for zero fields.
func (o *Options) EnsureDefaults() {
	if len(o.Networks) == 0 {
		o.Networks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.PeerToken == "" && len(o.Tokens) > 0 {
		o.PeerToken = o.Tokens[0]
	}
	if o.PeerTimeout == 0 {
		o.PeerTimeout = 5 * time.Second
	}
	if o.Key == nil {
		o.Key = cache.KeyFromURL
	}
}

// Validate reports every invalid field at once.
func (o *Options) Validate() error {
	var errs []error
	if len(o.Tokens) == 0 {
		errs = append(errs, fmt.Errorf("purge: Tokens is empty: %w", ErrNoToken))
	}
	for i, t := range o.Tokens {
		if len(t) < 16 || strings.IndexFunc(t, unicode.IsSpace) >= 0 {
			errs = append(errs, fmt.Errorf("purge: Tokens[%d] (fingerprint %s) is invalid: must be at least 16 characters without white space", i, Fingerprint(t)))
		}
	}
	for i, p := range o.Networks {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("purge: Networks[%d] %q is invalid: not a network prefix", i, p))
		}
	}
	if o.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("purge: MaxBodyBytes %d is invalid: must not be negative", o.MaxBodyBytes))
	}
	seen := map[string]int{}
	for i, p := range o.Peers {
		if err := CheckPeerURL(p); err != nil {
			errs = append(errs, fmt.Errorf("purge: Peers[%d] %q is invalid: %v", i, p, err))
			continue
		}
		base := strings.TrimRight(p, "/")
		if j, dup := seen[base]; dup {
			errs = append(errs, fmt.Errorf("purge: Peers[%d] %q is invalid: repeats Peers[%d]; each peer would be purged twice", i, p, j))
			continue
		}
		seen[base] = i
	}
	if t := o.PeerToken; len(o.Peers) > 0 && t != "" && (len(t) < 16 || strings.IndexFunc(t, unicode.IsSpace) >= 0) {
		errs = append(errs, fmt.Errorf("purge: PeerToken (fingerprint %s) is invalid: must be at least 16 characters without white space", Fingerprint(t)))
	}
	if o.PeerTimeout < 0 {
		errs = append(errs, fmt.Errorf("purge: PeerTimeout %v is invalid: must not be negative", o.PeerTimeout))
	}
	if o.Stream != nil && len(o.Peers) > 0 {
		errs = append(errs, errors.New("purge: Peers and Stream are both set: with a purge stream every node gets every purge from it; drop the peers"))
	}
	return errors.Join(errs...)
}

// CheckPeerURL reports whether raw can be an entry of Options.Peers: an
// absolute http or https URL with a host and without query, fragment or
// user information (the token travels in Authorization). The error says
// what is wrong and states the rule.
func CheckPeerURL(raw string) error {
	const rule = "want the absolute http or https URL of a peer's admin listener, e.g. http://10.0.0.2:8081, without query or fragment"
	u, err := url.Parse(raw)
	var why string
	switch {
	case err != nil:
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		why = "unparsable (" + err.Error() + ")"
	case u.Scheme != "http" && u.Scheme != "https":
		why = "scheme is not http or https"
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		why = "no host"
	case u.User != nil:
		why = "has user information"
	case u.RawQuery != "" || u.ForceQuery:
		why = "has a query"
	case u.Fragment != "" || strings.Contains(raw, "#"):
		why = "has a fragment"
	default:
		return nil
	}
	return fmt.Errorf("%s: %s", why, rule)
}

// API serves purge requests against one store. Its handlers are safe for
// concurrent use.
type API struct {
	st      *store.Store
	opts    Options
	log     *slog.Logger
	tokens  [][sha256.Size]byte // hashes of Options.Tokens
	metrics *Metrics
	now     func() time.Time
	client  *http.Client // sends forwarded purges; nil without peers
	ownsCl  bool         // client is the dedicated default, closed by Close
}

// New returns the API for st.
func New(st *store.Store, opts Options) (*API, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if st == nil {
		return nil, errors.New("purge: a store is required")
	}
	opts.Tokens = append([]string(nil), opts.Tokens...)
	opts.Networks = append([]netip.Prefix(nil), opts.Networks...)
	opts.Peers = append([]string(nil), opts.Peers...)
	if opts.Metrics == nil {
		opts.Metrics = newMetrics()
	}
	a := &API{
		st:      st,
		opts:    opts,
		log:     opts.Logger.With("component", "purge"),
		metrics: opts.Metrics,
		now:     time.Now,
	}
	for _, t := range opts.Tokens {
		a.tokens = append(a.tokens, sha256.Sum256([]byte(t)))
	}
	if len(opts.Peers) > 0 {
		a.client = opts.Client
		if a.client == nil {
			a.client, a.ownsCl = newPeerClient(), true
		}
		a.log.Info("purges fan out to peers", "peers", strings.Join(opts.Peers, ","), "peer_token", Fingerprint(opts.PeerToken), "peer_timeout", opts.PeerTimeout)
	}
	return a, nil
}

// newPeerClient returns the dedicated client of forwarded purges. It
// follows no redirect (a peer that redirects has failed: a POST would turn
// into a GET) and uses no proxy from the environment. The fan-out's
// context bounds every request.
func newPeerClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Close releases the idle connections of the dedicated peer client (not
// those of an Options.Client). The handlers must not be used afterwards.
func (a *API) Close() {
	if a.ownsCl {
		a.client.CloseIdleConnections()
	}
}

// Metrics returns the API's Prometheus collectors.
func (a *API) Metrics() *Metrics { return a.metrics }

// Fingerprint identifies a token in logs without revealing it: the first
// 8 hex digits of its SHA-256.
func Fingerprint(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:4])
}

// Handler returns the admin handler: POST /purge/url, /purge/prefix,
// /purge/tag, /purge/all and /purge/regex ({"patterns": [...]}: a ban,
// applied lazily, which answers {"purged": 0}), each answering
// {"purged": N} on success and
// {"error": "..."} with 400 (malformed body), 401 (missing or wrong
// token) or 500 (store failure). Mount it on the admin mux at "/purge/".
//
// With Options.Peers, a successful local purge is then forwarded to every
// peer (unless the request carries ForwardedField: 1) and the answer lists
// each peer's result: {"purged": N, "peers": [{"peer": URL, "purged": n},
// {"peer": URL, "error": "..."}]}. When any peer failed the status is 502
// and "error" says the purge is incomplete; the local purge stands.
//
// With Options.Stream the purge is published instead of applied here,
// and the answer (200) comes once the stream has stored it:
// {"purged": N (this node's count), "stream": {"seq": S, "applied": nodes
// that have applied it so far, "nodes": consumers of the stream,
// "pending": true when this node had not yet}}; 503 when the stream did
// not store it (nothing was purged).
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /purge/url", a.serveKind(kindURL))
	mux.HandleFunc("POST /purge/prefix", a.serveKind(kindPrefix))
	mux.HandleFunc("POST /purge/tag", a.serveKind(kindTag))
	mux.HandleFunc("POST /purge/all", a.serveKind(kindAll))
	mux.HandleFunc("POST /purge/regex", a.serveKind(kindRegex))
	return mux
}

// kind is what a purge request selects by.
type kind string

const (
	kindURL    kind = "url"
	kindPrefix kind = "prefix"
	kindTag    kind = "tag"
	kindAll    kind = "all"
	// kindRegex bans by regular expression (store.Ban): recorded at once,
	// applied lazily on lookup and by a background sweep.
	kindRegex kind = "regex"
)

// The request bodies, one type per endpoint so that a field meant for
// another endpoint is an unknown field.
type (
	urlRequest struct {
		URLs []string `json:"urls"`
		Soft bool     `json:"soft"`
	}
	prefixRequest struct {
		Prefixes []string `json:"prefixes"`
		Soft     bool     `json:"soft"`
	}
	tagRequest struct {
		Tags []string `json:"tags"`
		Soft bool     `json:"soft"`
	}
	allRequest struct {
		Soft bool `json:"soft"`
	}
	regexRequest struct {
		Patterns []string `json:"patterns"`
		Soft     bool     `json:"soft"`
	}
)

// result is the body of every admin answer.
type result struct {
	Purged int           `json:"purged"`
	Peers  []peerResult  `json:"peers,omitempty"`
	Stream *streamResult `json:"stream,omitempty"`
	Error  string        `json:"error,omitempty"`
}

// streamResult is where a purge published to the stream stands.
type streamResult struct {
	Seq uint64 `json:"seq"` // the event's stream sequence
	// Applied is the number of nodes that had applied the event when
	// the answer was made, of Nodes; -1 each when NATS did not say.
	Applied int `json:"applied"`
	Nodes   int `json:"nodes"`
	// Pending: this node had not applied it yet (Purged is then 0).
	Pending bool `json:"pending,omitempty"`
}

// peerResult is one peer's part of a fan-out: Purged on success, else
// Error.
type peerResult struct {
	Peer   string `json:"peer"`
	Purged *int   `json:"purged,omitempty"`
	Error  string `json:"error,omitempty"`
}

func (a *API) serveKind(k kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := a.now()
		fp, ok := a.authorize(r)
		if !ok {
			a.metrics.requests.WithLabelValues(string(k), "unauthorized").Inc()
			a.log.Warn("purge denied", "who", r.RemoteAddr, "token", fp, "kind", k, "reason", "missing or wrong bearer token")
			w.Header().Set("WWW-Authenticate", `Bearer realm="cellar purge"`)
			writeJSON(w, http.StatusUnauthorized, result{Error: "missing or wrong bearer token"})
			return
		}
		sels, soft, err := a.parse(k, r, w)
		if err != nil {
			a.metrics.requests.WithLabelValues(string(k), "bad_request").Inc()
			a.log.Warn("purge rejected", "who", r.RemoteAddr, "token", fp, "kind", k, "err", err)
			writeJSON(w, http.StatusBadRequest, result{Error: err.Error()})
			return
		}
		if a.opts.Stream != nil {
			a.publish(w, r, start, fanOut{kind: k, label: string(k), token: fp, what: describe(sels), sels: sels, soft: soft})
			return
		}
		n, err := a.purge(r.Context(), sels, soft)
		what := describe(sels)
		if err != nil {
			a.metrics.requests.WithLabelValues(string(k), "error").Inc()
			a.log.Error("purge failed", "who", r.RemoteAddr, "token", fp, "kind", k, "what", what, "soft", soft, "purged", n, "err", err)
			writeJSON(w, http.StatusInternalServerError, result{Purged: n, Error: "purge failed: " + err.Error()})
			return
		}
		a.metrics.objects.WithLabelValues(string(k)).Add(float64(n))
		a.finish(w, r, start, fanOut{kind: k, label: string(k), token: fp, what: what, sels: sels, soft: soft, purged: n})
	}
}

// fanOut is a purge that succeeded locally, on its way to the peers.
type fanOut struct {
	kind   kind   // the admin endpoint that the peers get
	label  string // the metrics' and audit line's kind ("method" for PURGE)
	token  string // fingerprint of the presented token, or "none"
	what   string // describe(sels)
	sels   []store.Selector
	soft   bool
	purged int // objects purged locally
}

// finish forwards a local purge to the peers (unless r was itself
// forwarded), writes the audit line and answers: 200, or 502 when any peer
// failed.
func (a *API) finish(w http.ResponseWriter, r *http.Request, start time.Time, f fanOut) {
	forwarded := r.Header.Get(ForwardedField) == "1"
	var peers []peerResult
	failed := 0
	if !forwarded && len(a.opts.Peers) > 0 {
		peers = a.forwardAll(r.Context(), f)
		for _, p := range peers {
			if p.Error != "" {
				failed++
				a.log.Warn("purge not forwarded", "peer", p.Peer, "kind", f.label, "what", f.what, "err", p.Error)
			}
		}
	}
	res, code, outcome := result{Purged: f.purged, Peers: peers}, http.StatusOK, "ok"
	if failed > 0 {
		code, outcome = http.StatusBadGateway, "incomplete"
		res.Error = fmt.Sprintf("purged here, but %d of %d peers failed: the purge is incomplete", failed, len(peers))
	}
	a.metrics.requests.WithLabelValues(f.label, outcome).Inc()
	a.log.Info("purge", "who", r.RemoteAddr, "token", f.token, "kind", f.label, "what", f.what, "soft", f.soft, "purged", f.purged,
		"forwarded", forwarded, "peers_ok", len(peers)-failed, "peers_failed", failed, "duration", a.now().Sub(start))
	writeJSON(w, code, res)
}

// forwardAll sends the purge to every peer at once and returns their
// results in the order of Options.Peers. It runs under a context detached
// from the client's, so a client that hangs up does not stop it half way,
// bounded by PeerTimeout; every request has ended when it returns.
func (a *API) forwardAll(ctx context.Context, f fanOut) []peerResult {
	body, err := forwardBody(f.kind, f.sels, f.soft)
	res := make([]peerResult, len(a.opts.Peers))
	if err != nil { // not expected: the selectors came from a parsed request
		for i, p := range a.opts.Peers {
			res[i] = peerResult{Peer: p, Error: "encoding the request: " + err.Error()}
		}
		return res
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.opts.PeerTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for i, p := range a.opts.Peers {
		wg.Go(func() {
			n, outcome, err := a.forward(ctx, p, f.kind, body)
			a.metrics.forwards.WithLabelValues(p, outcome).Inc()
			if err != nil {
				res[i] = peerResult{Peer: p, Error: err.Error()}
				return
			}
			res[i] = peerResult{Peer: p, Purged: &n}
		})
	}
	wg.Wait()
	return res
}

// forward posts body to peer's /purge/<k> and returns the number it
// purged, or an error and the metric outcome: unreachable, timeout,
// status (an answer other than 200) or bad_answer.
func (a *API) forward(ctx context.Context, peer string, k kind, body []byte) (int, string, error) {
	u := strings.TrimRight(peer, "/") + "/purge/" + string(k)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, "unreachable", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.opts.PeerToken)
	req.Header.Set(ForwardedField, "1")
	resp, err := a.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, "timeout", a.errTimeout()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the peer's URL is reported beside the error
		}
		return 0, "unreachable", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		if ctx.Err() != nil {
			return 0, "timeout", a.errTimeout()
		}
		return 0, "bad_answer", fmt.Errorf("reading the answer: %v", err)
	}
	var ans struct {
		Purged *int   `json:"purged"`
		Error  string `json:"error"`
	}
	decErr := json.Unmarshal(b, &ans)
	if resp.StatusCode != http.StatusOK {
		msg := ans.Error
		if decErr != nil || msg == "" {
			msg = strings.TrimSpace(string(b))
			if len(msg) > 200 {
				msg = msg[:200] + "..."
			}
		}
		return 0, "status", fmt.Errorf("answered %s: %s", resp.Status, msg)
	}
	if decErr != nil {
		return 0, "bad_answer", fmt.Errorf("undecodable answer: %v", decErr)
	}
	if ans.Purged == nil {
		return 0, "bad_answer", errors.New(`undecodable answer: no "purged" count`)
	}
	return *ans.Purged, "ok", nil
}

func (a *API) errTimeout() error {
	return fmt.Errorf("timeout: no complete answer within %v", a.opts.PeerTimeout)
}

// forwardBody re-encodes a parsed request of kind k for the peers, from
// its normalized selectors (which ParseRequest accepts again as they are).
func forwardBody(k kind, sels []store.Selector, soft bool) ([]byte, error) {
	var vals []string
	for _, s := range sels {
		switch k {
		case kindURL:
			vals = append(vals, s.URL)
		case kindPrefix:
			vals = append(vals, s.Prefix)
		case kindTag:
			vals = append(vals, s.Tag)
		case kindRegex:
			vals = append(vals, s.Pattern.String())
		}
	}
	switch k {
	case kindURL:
		return json.Marshal(urlRequest{URLs: vals, Soft: soft})
	case kindPrefix:
		return json.Marshal(prefixRequest{Prefixes: vals, Soft: soft})
	case kindTag:
		return json.Marshal(tagRequest{Tags: vals, Soft: soft})
	case kindAll:
		return json.Marshal(allRequest{Soft: soft})
	case kindRegex:
		return json.Marshal(regexRequest{Patterns: vals, Soft: soft})
	}
	return nil, fmt.Errorf("unknown purge kind %q", k)
}

// RequireToken wraps h, another admin handler that must not be open to
// anyone who reaches the admin listener (the inspection of stored
// responses), so that only requests carrying one of the API's bearer
// tokens reach it; others get 401, as on the purge endpoints.
func (a *API) RequireToken(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fp, ok := a.authorize(r); !ok {
			a.log.Warn("admin request denied", "who", r.RemoteAddr, "token", fp, "path", r.URL.Path, "reason", "missing or wrong bearer token")
			w.Header().Set("WWW-Authenticate", `Bearer realm="cellar purge"`)
			writeJSON(w, http.StatusUnauthorized, result{Error: "missing or wrong bearer token"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// authorize checks the bearer token in constant time against every
// configured token (RFC 6750 §2.1). It returns the presented token's
// fingerprint for the audit line ("none" when absent).
func (a *API) authorize(r *http.Request) (fingerprint string, ok bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "none", false
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "none", false
	}
	sum := sha256.Sum256([]byte(tok))
	match := 0
	for i := range a.tokens {
		match |= subtle.ConstantTimeCompare(sum[:], a.tokens[i][:])
	}
	return Fingerprint(tok), match == 1
}

// parse decodes and validates the whole request before anything is purged:
// every problem is reported at once, and an error means nothing happens.
func (a *API) parse(k kind, r *http.Request, w http.ResponseWriter) ([]store.Selector, bool, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.opts.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, false, fmt.Errorf("%w: body is larger than %d bytes", ErrBadRequest, mbe.Limit)
		}
		return nil, false, fmt.Errorf("%w: reading body: %v", ErrBadRequest, err)
	}
	return parseRequest(string(k), body, a.opts.Key)
}

// ParseRequest decodes the JSON body of an admin request of the given kind
// ("url", "prefix", "tag", "all" or "regex") into store selectors. Unknown fields,
// trailing data, empty lists, empty values, relative or non-http(s) URLs
// and tags with white space are errors wrapping ErrBadRequest; every
// problem is reported at once. An empty body is allowed only for "all".
func ParseRequest(k string, body []byte) (sels []store.Selector, soft bool, err error) {
	return parseRequest(k, body, cache.KeyFromURL)
}

// parseRequest is ParseRequest with URLs keyed by keyOf.
func parseRequest(k string, body []byte, keyOf func(string) (string, error)) (sels []store.Selector, soft bool, err error) {
	if k == string(kindAll) && len(bytes.TrimSpace(body)) == 0 {
		return []store.Selector{{All: true}}, false, nil
	}
	var (
		ur  urlRequest
		pr  prefixRequest
		tr  tagRequest
		ar  allRequest
		xr  regexRequest
		dst any
	)
	switch kind(k) {
	case kindURL:
		dst = &ur
	case kindPrefix:
		dst = &pr
	case kindTag:
		dst = &tr
	case kindAll:
		dst = &ar
	case kindRegex:
		dst = &xr
	default:
		return nil, false, fmt.Errorf("%w: unknown purge kind %q", ErrBadRequest, k)
	}
	if err := decodeStrict(body, dst); err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	list := func(field string, vals []string, check func(i int, v string)) {
		if len(vals) == 0 {
			bad("%q: the list is empty: give at least one value", field)
		}
		for i, v := range vals {
			check(i, v)
		}
	}
	switch kind(k) {
	case kindURL:
		soft = ur.Soft
		list("urls", ur.URLs, func(i int, v string) {
			key, err := keyOf(v)
			if err != nil {
				bad("urls[%d] %q: must be an absolute http or https URL", i, v)
				return
			}
			sels = append(sels, store.Selector{URL: key})
		})
	case kindPrefix:
		soft = pr.Soft
		list("prefixes", pr.Prefixes, func(i int, v string) {
			key, err := cache.KeyFromURL(v)
			if err != nil {
				bad("prefixes[%d] %q: must be an absolute http or https URL prefix (scheme and host at least)", i, v)
				return
			}
			sels = append(sels, store.Selector{Prefix: key})
		})
	case kindTag:
		soft = tr.Soft
		list("tags", tr.Tags, func(i int, v string) {
			switch {
			case v == "":
				bad("tags[%d] is empty", i)
			case strings.IndexFunc(v, unicode.IsSpace) >= 0 || strings.IndexByte(v, ',') >= 0:
				bad("tags[%d] %q: must not contain white space or commas (Surrogate-Key and Cache-Tag separators)", i, v)
			default:
				sels = append(sels, store.Selector{Tag: v})
			}
		})
	case kindAll:
		soft = ar.Soft
		sels = []store.Selector{{All: true}}
	case kindRegex:
		soft = xr.Soft
		list("patterns", xr.Patterns, func(i int, v string) {
			res, err := store.CompilePatterns([]string{v})
			switch {
			case v == "":
				bad("patterns[%d] is empty", i)
			case err != nil:
				bad("patterns[%d] %q: not a regular expression (Go RE2 syntax): %v", i, v, errors.Unwrap(err))
			default:
				sels = append(sels, store.Selector{Pattern: res[0]})
			}
		})
	}
	if len(errs) > 0 {
		return nil, false, fmt.Errorf("%w: %w", ErrBadRequest, errors.Join(errs...))
	}
	return sels, soft, nil
}

// decodeStrict decodes exactly one JSON object into dst, rejecting unknown
// fields and trailing data, with errors that say what is wrong.
func decodeStrict(body []byte, dst any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errors.New("empty body: want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return fmt.Errorf("bad JSON at byte %d: %v", se.Offset, err)
		case errors.As(err, &te):
			return fmt.Errorf("bad JSON: field %q must be %s, not %s", te.Field, te.Type, te.Value)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return errors.New("bad JSON: unexpected end of body")
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return fmt.Errorf("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return fmt.Errorf("bad JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("bad JSON: data after the object")
	}
	return nil
}

// purge applies sels in order and returns the number of objects affected.
// An object that several selectors match counts once per removal or
// invalidation.
func (a *API) purge(ctx context.Context, sels []store.Selector, soft bool) (int, error) {
	if sels[0].Pattern != nil {
		// A ban costs no scan now: store.Ban records it durably and it
		// applies lazily, so the count of objects is not known.
		pats := make([]string, len(sels))
		for i, s := range sels {
			pats[i] = s.Pattern.String()
		}
		return 0, a.st.Ban(context.WithoutCancel(ctx), pats, soft)
	}
	// Finish the purge even when the client goes away: a half-applied
	// list would be a surprise.
	// One store purge for the whole list: one sync, and an object that
	// several selectors match counts once.
	return a.st.PurgeMany(context.WithoutCancel(ctx), sels, soft)
}

// describe renders selectors for the audit line.
func describe(sels []store.Selector) string {
	parts := make([]string, 0, len(sels))
	for _, s := range sels {
		switch {
		case s.All:
			parts = append(parts, "all")
		case s.URL != "":
			parts = append(parts, "url="+s.URL)
		case s.Prefix != "":
			parts = append(parts, "prefix="+s.Prefix)
		case s.Tag != "":
			parts = append(parts, "tag="+s.Tag)
		case s.Pattern != nil:
			parts = append(parts, "regex="+s.Pattern.String())
		}
	}
	return strings.Join(parts, " ")
}

func writeJSON(w http.ResponseWriter, code int, v result) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
