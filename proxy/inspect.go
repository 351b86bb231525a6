package proxy

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/store"
)

// maxInspected bounds the objects one inspection lists: a URL has its
// response, a Vary marker, its variants and their codings, rarely more.
const maxInspected = 1000

// InspectReport is what cellar holds for one URL: every stored object under
// its primary key (the response, or a Vary marker and its variants, and the
// content-coding variants of each), with its freshness as a plain request
// for the URL would see it now.
type InspectReport struct {
	URL string `json:"url"`
	// Key is the primary cache key (RFC 9111 §4).
	Key string `json:"key"`
	// Vary lists the fields that select among stored variants, when the
	// origin's response varies.
	Vary    []string          `json:"vary,omitempty"`
	Objects []InspectedObject `json:"objects"`
	// Truncated is set when more objects were stored than listed.
	Truncated bool `json:"truncated,omitempty"`
}

// InspectedObject is one stored object of an InspectReport.
type InspectedObject struct {
	// Key is the object's cache key with its parts separated by spaces.
	Key string `json:"key"`
	// Kind is "response", "vary-marker", "variant" (selected by the Vary
	// fields) or "coding" (a compressed form cellar made: gzip, br, zstd).
	Kind   string `json:"kind"`
	Coding string `json:"coding,omitempty"`
	Status int    `json:"status,omitempty"`
	Size   int64  `json:"size"`
	// AgeSeconds and TTLSeconds are current_age and freshness_lifetime
	// minus it (RFC 9111 §4.2.3); TTLSeconds is negative when stale.
	AgeSeconds int64 `json:"age_seconds"`
	TTLSeconds int64 `json:"ttl_seconds"`
	Fresh      bool  `json:"fresh"`
	// Invalid marks an object invalidated by a soft purge or an unsafe
	// request: it is revalidated before reuse.
	Invalid   bool        `json:"invalid,omitempty"`
	Stored    time.Time   `json:"stored"`
	KeepUntil *time.Time  `json:"keep_until,omitempty"`
	Tags      []string    `json:"tags,omitempty"`
	InMemory  bool        `json:"in_memory"`
	Header    http.Header `json:"header"`
}

// Inspect reports what is stored for the absolute URL raw.
func (s *Server) Inspect(r *http.Request, raw string) (*InspectReport, error) {
	primary, err := s.policy.KeyFromURL(raw)
	if err != nil {
		return nil, err
	}
	listed, err := s.store.List(r.Context(), store.Selector{URL: primary}, maxInspected+1)
	if err != nil {
		return nil, err
	}
	rep := &InspectReport{URL: raw, Key: primary, Objects: []InspectedObject{}}
	if len(listed) > maxInspected {
		listed, rep.Truncated = listed[:maxInspected], true
	}
	// Freshness as a plain GET of the URL would see it.
	plain, err := http.NewRequestWithContext(r.Context(), http.MethodGet, raw, nil)
	if err != nil {
		return nil, err
	}
	now := s.now()
	// A coding variant's Meta holds only its Content-Encoding; its freshness
	// is its identity object's, as on a hit (codings.go).
	byKey := make(map[string]*cache.Meta, len(listed))
	for i := range listed {
		byKey[listed[i].Key] = &listed[i].Meta
	}
	for _, l := range listed {
		o := InspectedObject{
			Key:      strings.ReplaceAll(l.Key, "\x00", " "),
			Kind:     "response",
			Status:   l.Meta.Status,
			Size:     l.Size,
			Invalid:  l.Meta.Invalid,
			Stored:   l.Meta.ResponseTime.UTC(),
			Tags:     l.Tags,
			InMemory: l.InMemory,
			Header:   l.Meta.Header,
		}
		if !l.KeepUntil.IsZero() {
			ku := l.KeepUntil.UTC()
			o.KeepUntil = &ku
		}
		rest := strings.TrimPrefix(l.Key, primary)
		freshness := &l.Meta
		switch {
		case isVaryMarker(&l.Meta):
			o.Kind = "vary-marker"
			rep.Vary, _ = cache.VaryFields(l.Meta.Header)
		case isCodingKey(l.Key):
			o.Kind = "coding"
			var id string
			id, o.Coding, _ = cache.ParseEncodingKey(l.Key)
			if identity, ok := byKey[id]; ok {
				freshness = identity
			}
		case rest != "":
			o.Kind = "variant"
		}
		if !isVaryMarker(&l.Meta) {
			lk := s.policy.Evaluate(plain, freshness, now)
			o.AgeSeconds = int64(lk.Age / time.Second)
			o.TTLSeconds = int64(lk.TTL / time.Second)
			o.Fresh = lk.TTL > 0 && !l.Meta.Invalid && !freshness.Invalid
		}
		rep.Objects = append(rep.Objects, o)
	}
	return rep, nil
}

// InspectHandler returns the admin handler of GET /inspect?url=URL, which
// answers Inspect's report as JSON: 400 for a missing or malformed URL,
// 500 when the store fails. It reveals stored header fields: mount it
// behind authentication.
func (s *Server) InspectHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			w.WriteHeader(http.StatusMethodNotAllowed)
			json.NewEncoder(w).Encode(map[string]string{"error": "use GET /inspect?url=URL"})
			return
		}
		raw := r.URL.Query().Get("url")
		if raw == "" || !(strings.HasPrefix(raw, "http://") || strings.HasPrefix(raw, "https://")) {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": "the url parameter must be an absolute http or https URL"})
			return
		}
		rep, err := s.Inspect(r, raw)
		if err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, cache.ErrBadURL) {
				code = http.StatusBadRequest
			}
			w.WriteHeader(code)
			json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	})
}
