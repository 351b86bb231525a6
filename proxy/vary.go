package proxy

// Vary bookkeeping (RFC 9111 §4.1): a response that varies is stored under
// the key of its variant (cache.VariantKey: the primary key plus the
// secondary key of the request fields it names), and a Vary marker at the
// primary key names those fields and lists the stored variants with their
// entity tags, so that validation carries them all (§4.3.1) and a 304 can
// select any of them (§4.3.4). Content codings are not Vary variants:
// codings.go.

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/store"
)

// variantsField is the Vary marker's internal field that lists the stored
// variants of a URL with their entity tags, so that a validation request
// carries the ETags of every stored variant (RFC 9111 §4.3.1) and a 304 can
// select any of them (§4.3.4) — for example a new Accept-Language whose
// representation the origin says is one already stored. Each value is
// "ETAG HEX", HEX the hex of the variant key's suffix after the primary
// key. Markers are never served, so the field never reaches a client.
const variantsField = "Cellar-Variants"

// maxListedVariants bounds the list (and so the If-None-Match field).
const maxListedVariants = 32

// listedVariant is one entry of a marker's variant list.
type listedVariant struct{ etag, key string }

// listedVariants returns the variants listed in the marker of primary.
func listedVariants(marker *store.Object, primary string) []listedVariant {
	if marker == nil {
		return nil
	}
	var out []listedVariant
	for _, v := range marker.Meta.Header[variantsField] {
		etag, hx, ok := strings.Cut(v, " ")
		suffix, err := hex.DecodeString(hx)
		if ok && err == nil && etag != "" {
			out = append(out, listedVariant{etag: etag, key: primary + string(suffix)})
		}
	}
	return out
}

// noteVariant records a variant just stored under key in the Vary marker
// of primary, creating or replacing the marker when its Vary fields differ
// (§4.1). Concurrent fills may lose each other's entries; a lost entry only
// makes a later validation less able to match, never wrong.
func (s *Server) noteVariant(ctx context.Context, primary string, vary []string, key string, meta cache.Meta) {
	keep := s.policy.KeepUntil(&meta, s.opts.Keep)
	entry := ""
	if etag := meta.Header.Get("Etag"); etag != "" && !strings.ContainsAny(etag, " \t") {
		entry = etag + " " + hex.EncodeToString([]byte(key[len(primary):]))
	}
	var list []string
	old, err := s.store.Get(ctx, primary)
	if err == nil && isVaryMarker(&old.Meta) {
		if f, _ := cache.VaryFields(old.Meta.Header); slices.Equal(f, vary) {
			suffix := " " + hex.EncodeToString([]byte(key[len(primary):]))
			for _, v := range old.Meta.Header[variantsField] {
				if !strings.HasSuffix(v, suffix) {
					list = append(list, v)
				}
			}
			if entry == "" && len(list) == len(old.Meta.Header[variantsField]) {
				return // nothing to add or drop
			}
			if entry != "" && slices.Contains(old.Meta.Header[variantsField], entry) {
				return // listed already
			}
		}
	}
	if entry != "" {
		list = append(list, entry)
	}
	if len(list) > maxListedVariants {
		list = list[len(list)-maxListedVariants:]
	}
	marker := cache.Meta{
		Header:       http.Header{"Vary": {strings.Join(vary, ", ")}},
		RequestTime:  meta.RequestTime,
		ResponseTime: meta.ResponseTime,
	}
	if len(list) > 0 {
		marker.Header[variantsField] = list
	}
	if old != nil && err == nil && isVaryMarker(&old.Meta) {
		keep = laterOf(keep, old.KeepUntil)
		if err := s.store.UpdateMeta(ctx, primary, marker, keep); err == nil {
			return
		}
	}
	wr, err := s.store.Create(ctx, primary, marker, store.CreateOptions{KeepUntil: keep, SizeHint: 0})
	if err != nil {
		s.storeError("create", primary, err)
		return
	}
	if _, err := wr.Commit(ctx); err != nil {
		s.storeError("commit", primary, err)
	}
}

// laterOf returns the later time; zero means forever.
func laterOf(a, b time.Time) time.Time {
	if a.IsZero() || b.IsZero() {
		return time.Time{}
	}
	if a.After(b) {
		return a
	}
	return b
}

// addVariantETags adds the ETags of every listed variant of the URL to the
// validation request's If-None-Match (§4.3.1).
func addVariantETags(h http.Header, f found) {
	vs := listedVariants(f.marker, f.primary)
	if len(vs) == 0 {
		return
	}
	tags := strings.Split(h.Get("If-None-Match"), ",")
	for i := range tags {
		tags[i] = strings.TrimSpace(tags[i])
	}
	tags = slices.DeleteFunc(tags, func(t string) bool { return t == "" })
	for _, v := range vs {
		if !slices.Contains(tags, v.etag) {
			tags = append(tags, v.etag)
		}
	}
	h.Set("If-None-Match", strings.Join(tags, ", "))
}

// revalidatedVariant handles a 304 to a validation request that carried
// the ETags of other variants: when it selects one of them (§4.3.4: strong
// ETag match), that variant is freshened and returned, to answer this
// request too. ok is false when the 304 selects no listed variant.
func (s *Server) revalidatedVariant(ctx context.Context, f found, resp *http.Response, reqTime, respTime time.Time, t *store.Ticket) (obj *store.Object, key string, ok bool) {
	etag := resp.Header.Get("Etag")
	if etag == "" {
		return nil, "", false
	}
	for _, v := range listedVariants(f.marker, f.primary) {
		if v.etag != etag || v.key == f.key && f.obj != nil {
			continue
		}
		o, err := s.store.Get(ctx, v.key)
		if err != nil || !cache.Matches304(&o.Meta, resp.Header) {
			continue
		}
		m := s.policy.Freshen(&o.Meta, resp.Header, reqTime, respTime)
		keep := s.policy.KeepUntil(&m, s.opts.Keep)
		if err := s.store.UpdateObjectMeta(ctx, t, o, m, keep); err != nil && !errors.Is(err, store.ErrSuperseded) {
			s.storeError("update", v.key, err)
		}
		fresh := *o
		fresh.Meta, fresh.KeepUntil = m, keep
		return &fresh, v.key, true
	}
	return nil, "", false
}
