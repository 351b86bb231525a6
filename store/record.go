package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"time"

	"github.com/cellar-cache/cellar/cache"
)

// Record layout in pebble. Every value starts with the CRC-32C of the rest.
//
//	"m" key                      meta record: metaRecord, the commit point
//	"c" fill(8, BE)              a body's first chunk
//	"c" fill(8, BE) index(4, BE) its next chunks (index 1, 2, ...)
//	"f" fill(8, BE)              fill registry (empty payload; stores written
//	                             before it was emptied hold the key): written
//	                             with the first chunk a fill writes before its
//	                             commit, deleted with the body; a fill
//	                             committed in one batch has none
//	"t" uvarint(len tag) tag key tag index entry (empty payload)
//	"o" index(4, BE)             last access of up to accessPerRecord
//	                             objects (accessRecord), rewritten whole at
//	                             Close
//	"u" fill(8, BE)              last access of one object, unix
//	                             milliseconds, as older stores kept it
//	"a" key                      the same by key, as still older stores
//	                             kept it: both read and replaced at Open
//
// The key is in the meta record's key and the tag entries only: chunks and
// access entries name the fill, not the URL. Meta records of version 1
// (metaVersionIndexedFirst) belong to objects whose first chunk is under
// "c" fill 0(4), as every chunk was before, and that have a fill record.
//
// Chunks are keyed by fill id, not by key, so a new fill never overwrites
// the chunks of the object it replaces, and one DeleteRange over
// ["c" fill, "c" fill+1) removes an object's body. At Open, a fill record
// whose key has no meta record naming that fill (a crash mid-fill) has its
// chunks removed; when a meta record is lost to corruption, Open removes
// every chunk whose fill no meta record names.
const (
	prefixMeta   = 'm'
	prefixChunk  = 'c'
	prefixFill   = 'f'
	prefixTag    = 't'
	prefixAccess = 'a' // older stores' access records, by key
	prefixUse    = 'u' // older stores' access records, by fill
	prefixOrder  = 'o'
)

// Meta record versions: version 2 objects keep their first chunk under
// "c" fill and have a fill record only when a chunk was written before
// the commit; version 1 objects keep it under "c" fill 0(4) and always
// have one.
const (
	metaVersion             = 2
	metaVersionIndexedFirst = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// seal prepends the CRC-32C of payload (which starts at buf[4:]).
func seal(buf []byte) []byte {
	binary.LittleEndian.PutUint32(buf, crc32.Checksum(buf[4:], castagnoli))
	return buf
}

// open verifies a sealed value and returns its payload. The result aliases
// v.
func unseal(v []byte) ([]byte, error) {
	if len(v) < 4 {
		return nil, fmt.Errorf("%d byte record: %w", len(v), ErrCorrupt)
	}
	if crc32.Checksum(v[4:], castagnoli) != binary.LittleEndian.Uint32(v) {
		return nil, fmt.Errorf("checksum mismatch: %w", ErrCorrupt)
	}
	return v[4:], nil
}

func sealed(payload []byte) []byte {
	buf := make([]byte, 4+len(payload))
	copy(buf[4:], payload)
	return seal(buf)
}

func metaKey(key string) []byte {
	return append([]byte{prefixMeta}, key...)
}

func fillKey(fill uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixFill}, fill)
}

// chunkKey is the key of chunk idx of fill: the first chunk without an
// index (most bodies have one chunk: 4 bytes less per object, as pebble
// stores the part of a key that differs from the key before it).
func chunkKey(dst []byte, fill uint64, idx uint32) []byte {
	dst = append(dst[:0], prefixChunk)
	dst = binary.BigEndian.AppendUint64(dst, fill)
	if idx == 0 {
		return dst
	}
	return binary.BigEndian.AppendUint32(dst, idx)
}

// indexedFirstChunkKey is the key of fill's first chunk in objects of
// meta record version 1.
func indexedFirstChunkKey(dst []byte, fill uint64) []byte {
	return binary.BigEndian.AppendUint32(chunkKey(dst, fill, 0), 0)
}

// chunkKey is the key of chunk idx of r's object.
func (r *metaRecord) chunkKey(dst []byte, idx uint32) []byte {
	if idx == 0 && r.version == metaVersionIndexedFirst {
		return indexedFirstChunkKey(dst, r.fill)
	}
	return chunkKey(dst, r.fill, idx)
}

// chunkSpan returns the key range holding every chunk of fill.
func chunkSpan(fill uint64) (start, end []byte) {
	start = binary.BigEndian.AppendUint64([]byte{prefixChunk}, fill)
	end = binary.BigEndian.AppendUint64([]byte{prefixChunk}, fill+1)
	return start, end
}

func tagPrefix(tag string) []byte {
	b := binary.AppendUvarint([]byte{prefixTag}, uint64(len(tag)))
	return append(b, tag...)
}

func tagKey(tag, key string) []byte {
	return append(tagPrefix(tag), key...)
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// metaRecord is the decoded meta record of one committed object.
type metaRecord struct {
	version   byte // as decoded; 0 (new records): metaVersion
	fill      uint64
	size      int64
	chunkSize int64
	keepUntil time.Time
	committed time.Time // to the millisecond
	tags      []string
	meta      cache.Meta
}

func (r *metaRecord) chunks() int64 {
	return (r.size + r.chunkSize - 1) / r.chunkSize
}

func putTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(b, 0)
	}
	return binary.AppendVarint(b, t.UnixNano())
}

func putString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encode returns the sealed meta record.
func (r *metaRecord) encode() []byte {
	b := make([]byte, 4, 128)
	v := r.version // a rewritten record keeps its object's layout
	if v == 0 {
		v = metaVersion
	}
	b = append(b, v)
	b = binary.AppendUvarint(b, r.fill)
	b = binary.AppendUvarint(b, uint64(r.size))
	b = binary.AppendUvarint(b, uint64(r.chunkSize))
	b = putTime(b, r.keepUntil)
	if v == metaVersionIndexedFirst {
		b = putTime(b, r.committed)
	} else {
		b = binary.AppendVarint(b, r.committed.UnixMilli())
	}
	b = binary.AppendUvarint(b, uint64(len(r.tags)))
	for _, t := range r.tags {
		b = putString(b, t)
	}
	b = binary.AppendVarint(b, int64(r.meta.Status))
	b = putTime(b, r.meta.RequestTime)
	b = putTime(b, r.meta.ResponseTime)
	inv := byte(0)
	if r.meta.Invalid {
		inv = 1
	}
	b = append(b, inv)
	b = binary.AppendUvarint(b, uint64(len(r.meta.Header)))
	for k, vs := range r.meta.Header {
		b = putString(b, k)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = putString(b, v)
		}
	}
	return seal(b)
}

var errShort = errors.New("truncated meta record")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) time() time.Time {
	if n := d.varint(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// committed reads the commit time: unix nanoseconds in version 1
// records, milliseconds since (it only orders objects by last access).
func (d *decoder) committed(version byte) time.Time {
	if version == metaVersionIndexedFirst {
		return d.time()
	}
	return time.UnixMilli(d.varint())
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = errShort
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// count reads a element count, bounded by the bytes left (each element
// takes at least one byte), so a bad record can't make us allocate much.
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errShort
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.count()
	if d.err != nil {
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func knownVersion(v byte) bool {
	return v == metaVersion || v == metaVersionIndexedFirst
}

// header decodes the fields every meta record starts with into r; an
// unknown version is an error wrapping ErrCorrupt (other errors stay in
// d.err).
func (d *decoder) header(r *metaRecord) error {
	if r.version = d.byte(); d.err == nil && !knownVersion(r.version) {
		return fmt.Errorf("meta record version %d: %w", r.version, ErrCorrupt)
	}
	r.fill = d.uvarint()
	r.size = int64(d.uvarint())
	r.chunkSize = int64(d.uvarint())
	r.keepUntil = d.time()
	r.committed = d.committed(r.version)
	return nil
}

// decodeIndexFields verifies a sealed meta record and decodes only what the
// index needs (Open reads every record: skipping the header fields makes it
// several times faster). Errors wrap ErrCorrupt.
func decodeIndexFields(v []byte) (r metaRecord, tags, tagBytes int, err error) {
	p, err := unseal(v)
	if err != nil {
		return r, 0, 0, err
	}
	d := decoder{b: p}
	if err := d.header(&r); err != nil {
		return r, 0, 0, err
	}
	tags = d.count()
	for range tags {
		n := d.count()
		if d.err != nil {
			break
		}
		d.b = d.b[n:]
		tagBytes += n
	}
	if d.err == nil && (r.chunkSize <= 0 || r.size < 0) {
		d.err = errors.New("bad sizes")
	}
	if d.err != nil {
		return r, 0, 0, fmt.Errorf("%w: %w", d.err, ErrCorrupt)
	}
	return r, tags, tagBytes, nil
}

// decodeMeta verifies and decodes a sealed meta record. Errors wrap
// ErrCorrupt.
func decodeMeta(v []byte) (*metaRecord, error) {
	p, err := unseal(v)
	if err != nil {
		return nil, err
	}
	d := decoder{b: p}
	r := &metaRecord{}
	if err := d.header(r); err != nil {
		return nil, err
	}
	if n := d.count(); n > 0 {
		r.tags = make([]string, n)
		for i := range r.tags {
			r.tags[i] = d.string()
		}
	}
	r.meta.Status = int(d.varint())
	r.meta.RequestTime = d.time()
	r.meta.ResponseTime = d.time()
	r.meta.Invalid = d.byte() == 1
	if n := d.count(); n > 0 {
		r.meta.Header = make(http.Header, n)
		for range n {
			k := d.string()
			vs := make([]string, d.count())
			for i := range vs {
				vs[i] = d.string()
			}
			r.meta.Header[k] = vs
		}
	}
	if d.err == nil && (r.chunkSize <= 0 || r.size < 0) {
		d.err = errors.New("bad sizes")
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: %w", d.err, ErrCorrupt)
	}
	return r, nil
}
