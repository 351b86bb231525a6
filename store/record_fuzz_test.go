package store

import (
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/cache"
)

// FuzzDecodeMeta: any payload (sealed with a valid checksum, so that the
// fuzzer gets past it) either decodes or fails with ErrCorrupt, never
// panics or allocates without bound; what decodes re-encodes to a record
// that decodes the same.
func FuzzDecodeMeta(f *testing.F) {
	rec := &metaRecord{fill: 7, size: 100_000, chunkSize: 65536, keepUntil: time.Unix(1800000000, 5),
		committed: time.Unix(1700000000, 0), tags: []string{"a", "bb"},
		meta: cache.Meta{Status: 200, Header: http.Header{"Etag": {`"x"`}, "Vary": {"A", "B"}}, Invalid: true}}
	f.Add(rec.encode()[4:])
	f.Add((&metaRecord{chunkSize: 1}).encode()[4:])
	f.Add([]byte{})
	f.Add([]byte{metaVersion})
	f.Add([]byte{metaVersionIndexedFirst})
	f.Fuzz(func(t *testing.T, payload []byte) {
		v := sealed(payload)
		r, err := decodeMeta(v)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		r2, err := decodeMeta(r.encode())
		if err != nil {
			t.Fatalf("re-encoded record fails: %v", err)
		}
		if r2.version != r.version || r2.fill != r.fill || r2.size != r.size || len(r2.tags) != len(r.tags) || len(r2.meta.Header) != len(r.meta.Header) {
			t.Fatalf("round trip changed the record: %+v vs %+v", r2, r)
		}
		if _, _, _, err := decodeIndexFields(v); err != nil {
			t.Fatalf("decodeIndexFields rejects what decodeMeta accepts: %v", err)
		}
	})
}

// FuzzDecodeAccess: any access record payload (sealed) either decodes or
// fails with ErrCorrupt; what decodes re-encodes to the same entries.
func FuzzDecodeAccess(f *testing.F) {
	f.Add(encodeAccess([]accessEntry{{fill: 9, access: 1700000000000}, {fill: 3, access: 1700000000500}, {fill: 1 << 40, access: 1700000000500}})[4:])
	f.Add(encodeAccess(nil)[4:])
	f.Add([]byte{200})
	f.Fuzz(func(t *testing.T, payload []byte) {
		var es []accessEntry
		err := decodeAccess(sealed(payload), func(e accessEntry) { es = append(es, e) })
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		var again []accessEntry
		if err := decodeAccess(encodeAccess(es), func(e accessEntry) { again = append(again, e) }); err != nil {
			t.Fatalf("re-encoded record fails: %v", err)
		}
		if !slices.Equal(es, again) {
			t.Fatalf("round trip changed the entries: %v vs %v", again, es)
		}
	})
}
