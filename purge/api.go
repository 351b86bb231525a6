// Package purge is cellar's purge API: it removes (or, soft, invalidates)
// stored responses by URL, URL prefix or tag, on the authenticated admin
// listener (POST /purge/url, /purge/prefix, /purge/tag, /purge/all) and
// through the PURGE method on the main listener (the convention of Varnish,
// Squid and nginx's purge module). A soft purge marks objects Invalid, so
// that they are revalidated before reuse (RFC 9111 §4.3) and may still be
// served stale while that happens or when the origin fails (RFC 5861 §3,
// §4). The command-line client is RunCLI.
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
	"strings"
	"time"
	"unicode"

	"github.com/cellar-cache/cellar/cache"
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
	return errors.Join(errs...)
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
	a := &API{
		st:      st,
		opts:    opts,
		log:     opts.Logger.With("component", "purge"),
		metrics: newMetrics(),
		now:     time.Now,
	}
	for _, t := range opts.Tokens {
		a.tokens = append(a.tokens, sha256.Sum256([]byte(t)))
	}
	return a, nil
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
// /purge/tag and /purge/all, each answering {"purged": N} on success and
// {"error": "..."} with 400 (malformed body), 401 (missing or wrong
// token) or 500 (store failure). Mount it on the admin mux at "/purge/".
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /purge/url", a.serveKind(kindURL))
	mux.HandleFunc("POST /purge/prefix", a.serveKind(kindPrefix))
	mux.HandleFunc("POST /purge/tag", a.serveKind(kindTag))
	mux.HandleFunc("POST /purge/all", a.serveKind(kindAll))
	return mux
}

// kind is what a purge request selects by.
type kind string

const (
	kindURL    kind = "url"
	kindPrefix kind = "prefix"
	kindTag    kind = "tag"
	kindAll    kind = "all"
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
)

// result is the body of every admin answer.
type result struct {
	Purged int    `json:"purged"`
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
		n, err := a.purge(r.Context(), sels, soft)
		what := describe(sels)
		if err != nil {
			a.metrics.requests.WithLabelValues(string(k), "error").Inc()
			a.log.Error("purge failed", "who", r.RemoteAddr, "token", fp, "kind", k, "what", what, "soft", soft, "purged", n, "err", err)
			writeJSON(w, http.StatusInternalServerError, result{Purged: n, Error: "purge failed: " + err.Error()})
			return
		}
		a.metrics.requests.WithLabelValues(string(k), "ok").Inc()
		a.metrics.objects.WithLabelValues(string(k)).Add(float64(n))
		a.log.Info("purge", "who", r.RemoteAddr, "token", fp, "kind", k, "what", what, "soft", soft, "purged", n, "duration", a.now().Sub(start))
		writeJSON(w, http.StatusOK, result{Purged: n})
	}
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
	return ParseRequest(string(k), body)
}

// ParseRequest decodes the JSON body of an admin request of the given kind
// ("url", "prefix", "tag" or "all") into store selectors. Unknown fields,
// trailing data, empty lists, empty values, relative or non-http(s) URLs
// and tags with white space are errors wrapping ErrBadRequest; every
// problem is reported at once. An empty body is allowed only for "all".
func ParseRequest(k string, body []byte) (sels []store.Selector, soft bool, err error) {
	if k == string(kindAll) && len(bytes.TrimSpace(body)) == 0 {
		return []store.Selector{{All: true}}, false, nil
	}
	var (
		ur  urlRequest
		pr  prefixRequest
		tr  tagRequest
		ar  allRequest
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
			key, err := cache.KeyFromURL(v)
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
	// Finish the purge even when the client goes away: a half-applied
	// list would be a surprise.
	ctx = context.WithoutCancel(ctx)
	total := 0
	for _, sel := range sels {
		n, err := a.st.Purge(ctx, sel, soft)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
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
