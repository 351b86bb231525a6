package store

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// Last access times persist in access records ("o" index), each holding
// up to accessPerRecord objects' fills and access times in order of
// access: a delta of each, a few bytes per object where a record per
// object ("u" fill, as older stores kept them) took about 10 in pebble's
// tables (TestChargeMatchesTheFootprint). Close rewrites them whole when
// an access time moved; Open rebuilds the replacement policy's recency
// order from them. Entries of objects removed since are skipped at Open
// and dropped at the next rewrite.
const accessPerRecord = 4096

// accessKey is the key of the i-th access record.
func accessKey(i int) []byte {
	return binary.BigEndian.AppendUint32([]byte{prefixOrder}, uint32(i))
}

// accessEntry is one object's last access, unix milliseconds.
type accessEntry struct {
	fill   uint64
	access int64
}

// encodeAccess returns the sealed access record of es, which are in
// order of access.
func encodeAccess(es []accessEntry) []byte {
	b := make([]byte, 4, 4+binary.MaxVarintLen64+5*len(es))
	b = binary.AppendUvarint(b, uint64(len(es)))
	var access int64
	var fill uint64
	for _, e := range es {
		b = binary.AppendUvarint(b, uint64(e.access-access))
		b = binary.AppendVarint(b, int64(e.fill-fill))
		access, fill = e.access, e.fill
	}
	return seal(b)
}

// decodeAccess verifies a sealed access record and calls fn with each of
// its entries. Errors wrap ErrCorrupt.
func decodeAccess(v []byte, fn func(accessEntry)) error {
	p, err := unseal(v)
	if err != nil {
		return err
	}
	d := decoder{b: p}
	n := d.count()
	var e accessEntry
	for range n {
		e.access += int64(d.uvarint())
		e.fill += uint64(d.varint())
		if d.err != nil {
			break
		}
		fn(e)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes after the entries", len(d.b))
	}
	if d.err != nil {
		return fmt.Errorf("access record: %w: %w", d.err, ErrCorrupt)
	}
	return nil
}

// loadAccess reads the access records into the index entries (byFill) of
// recover and adds to b the removal of records that fail their checksum
// and of older stores' access records ("u" fill, "a" key), whose times it
// takes: the next Close writes them into access records.
func (d *diskTier) loadAccess(b *pebble.Batch, byFill map[uint64]*diskEntry) error {
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixOrder}, UpperBound: []byte{prefixOrder + 1}})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		err := decodeAccess(it.Value(), func(a accessEntry) {
			// An object is accessed after its commit: an earlier entry
			// names an object removed since whose fill id a later fill
			// took (Open continues from the highest fill it finds).
			if e := byFill[a.fill]; e != nil && a.access >= e.access.Load() {
				e.access.Store(a.access)
				e.saved = a.access
			}
		})
		if err != nil {
			d.log.Warn("deleting corrupt access record", "err", err)
			b.Delete(it.Key(), nil)
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	// Older stores' records. e.saved stays apart from the access time, so
	// that the next Close writes it.
	older := func(prefix byte, entry func(k []byte) *diskEntry) error {
		it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
		if err != nil {
			return err
		}
		for it.First(); it.Valid(); it.Next() {
			b.Delete(it.Key(), nil)
			e := entry(it.Key()[1:])
			p, err := unseal(it.Value())
			if e == nil || err != nil || len(p) != 8 {
				continue
			}
			e.access.Store(int64(beUint64(p)))
			e.saved = e.access.Load() - 1
		}
		return it.Close()
	}
	if err := older(prefixAccess, func(k []byte) *diskEntry { return d.index[string(k)] }); err != nil {
		return err
	}
	return older(prefixUse, func(k []byte) *diskEntry {
		if len(k) != 8 {
			return nil
		}
		return byFill[beUint64(k)]
	})
}

// saveAccess persists the access times, if one moved since they were
// loaded or saved, so that eviction order survives a restart.
func (d *diskTier) saveAccess() error {
	d.mu.Lock()
	moved := false
	es := make([]accessEntry, 0, len(d.index))
	for _, e := range d.index {
		a := e.access.Load()
		moved = moved || a != e.saved
		e.saved = a
		es = append(es, accessEntry{fill: e.fill, access: a})
	}
	d.mu.Unlock()
	if !moved {
		return nil
	}
	slices.SortFunc(es, func(x, y accessEntry) int {
		return cmp.Or(cmp.Compare(x.access, y.access), cmp.Compare(x.fill, y.fill))
	})
	b := d.db.NewBatch()
	defer b.Close()
	n := 0
	for part := range slices.Chunk(es, accessPerRecord) {
		b.Set(accessKey(n), encodeAccess(part), nil)
		n++
	}
	b.DeleteRange(accessKey(n), []byte{prefixOrder + 1}, nil)
	return d.commit(b, pebble.Sync)
}
