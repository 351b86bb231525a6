package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// Bans are purges by regular expression, applied lazily as Varnish applies
// its bans: Ban records them durably and returns at once; Get checks an
// object against the bans newer than it (an atomic load and a comparison
// when there are none, the common case), and a background sweeper applies
// each ban to every stored object and then forgets it.
//
// "Newer" is by fill id, not by clock: a ban made when the last fill id
// handed out was L applies to objects whose fill id is at most L, which are
// the objects stored, or whose fill had started, before the ban. A fill
// that started before the ban and commits after it is also caught by the
// purge log (CreateOptions.Since), like any purge.
//
// Records: "b" seq(8, BE) -> sealed: soft(1) threshold(8, BE) pattern.

// prefixBan is the key prefix of ban records.
const prefixBan = 'b'

// ErrBadPattern is wrapped by Ban's error for a pattern that is not a
// valid regular expression (RE2 syntax, package regexp).
var ErrBadPattern = errors.New("store: bad ban pattern")

// ban is one pending ban.
type ban struct {
	seq uint64
	// threshold: objects whose fill id is below it are older than the ban.
	threshold uint64
	re        *regexp.Regexp
	soft      bool
	// pubs are the commits publishing when the ban was recorded: the
	// sweep waits for them (see purgeLog). None after a restart.
	pubs []*publication
}

// banList is the pending bans, oldest first.
type banList struct {
	mu      sync.RWMutex // protects list and nextSeq
	list    []*ban
	nextSeq uint64
	// newest is the highest threshold of a pending ban; 0 when none.
	newest atomic.Uint64

	lazy, swept atomic.Int64 // objects banned on lookup, by the sweeper
	added       atomic.Int64 // bans recorded since Open
}

// matchKey reports whether re matches key's URL: the part before the
// first 0 byte, so that a ban of a URL covers its variants.
func banMatches(re *regexp.Regexp, key string) bool {
	for i := 0; i < len(key); i++ {
		if key[i] == 0 {
			key = key[:i]
			break
		}
	}
	return re.MatchString(key)
}

// CompilePatterns compiles ban patterns, reporting every bad one at once
// (each error wraps ErrBadPattern).
func CompilePatterns(patterns []string) ([]*regexp.Regexp, error) {
	var errs []error
	res := make([]*regexp.Regexp, 0, len(patterns))
	for i, p := range patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: patterns[%d] %q: %v", ErrBadPattern, i, p, err))
			continue
		}
		res = append(res, re)
	}
	if p := len(patterns); p == 0 {
		errs = append(errs, fmt.Errorf("%w: no pattern", ErrBadPattern))
	}
	return res, errors.Join(errs...)
}

// Ban bans every stored object whose key's URL (the primary key, before any
// variant suffix) matches one of patterns (Go regular expressions,
// unanchored: anchor with ^ and $). Hard bans make the objects misses;
// soft bans mark them Invalid (revalidated before reuse, still usable for
// stale-if-error). Ban is durable when it returns and costs no scan: Get
// applies it to older objects as they are looked up, and a background
// sweeper removes or invalidates the rest, then forgets the ban. A restart
// keeps pending bans and resumes their sweep.
func (s *Store) Ban(ctx context.Context, patterns []string, soft bool) error {
	res, err := CompilePatterns(patterns)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	d := s.acquire()
	if d == nil || d.readOnly {
		if d != nil {
			d.release()
		}
		return fmt.Errorf("store: recording ban: the disk tier cannot write (%s): %w", s.DiskState().Mode, ErrUnavailable)
	}
	defer d.release()
	bl := &s.bans
	bl.mu.Lock()
	threshold := d.nextFill.Load() + 1
	b := d.db.NewBatch()
	added := make([]*ban, 0, len(res))
	for i, re := range res {
		bn := &ban{seq: bl.nextSeq + uint64(i) + 1, threshold: threshold, re: re, soft: soft}
		b.Set(banKey(bn.seq), encodeBan(bn), nil)
		added = append(added, bn)
	}
	err = d.commit(b, pebble.Sync)
	b.Close()
	if err != nil {
		bl.mu.Unlock()
		return fmt.Errorf("store: recording ban: %w", err)
	}
	bl.nextSeq += uint64(len(res))
	bl.list = append(bl.list, added...)
	bl.newest.Store(threshold)
	bl.mu.Unlock()
	bl.added.Add(int64(len(added)))
	// Fills in progress that started before the ban commit Invalid.
	var sels []Selector
	var all []*publication
	for _, bn := range added {
		sel := Selector{Pattern: bn.re}
		pubs := s.purges.record(sel)
		bl.mu.Lock()
		bn.pubs = pubs
		bl.mu.Unlock()
		sels, all = append(sels, sel), append(all, pubs...)
	}
	s.wakeSweeper()
	s.banHot(ctx, sels, all) // hot.go: hot copies have no fill id to compare
	return nil
}

// banned applies the pending bans to o, an object just read: nil, true
// when a hard ban removed it; a copy marked Invalid when a soft ban
// matched; o itself otherwise.
func (s *Store) banned(o *Object) (*Object, bool) {
	n := s.bans.newest.Load()
	if n == 0 || o.loc.fill >= n {
		return o, false // the common case: no ban newer than the object
	}
	s.bans.mu.RLock()
	hard, soft := false, false
	for _, bn := range s.bans.list {
		if o.loc.fill < bn.threshold && banMatches(bn.re, o.Key) {
			if !bn.soft {
				hard = true
				break
			}
			soft = true
		}
	}
	s.bans.mu.RUnlock()
	switch {
	case hard:
		if d := s.acquire(); d != nil {
			if e, _, _ := d.lookup(o.Key); e != nil && e.fill == o.loc.fill && d == o.loc.tier && !d.readOnly {
				if d.remove(o.Key, e, pebble.NoSync) {
					s.bans.lazy.Add(1)
				}
			}
			d.release()
		}
		return nil, true
	case soft && !o.Meta.Invalid:
		c := *o
		c.Meta.Invalid = true
		s.bans.lazy.Add(1)
		return &c, false
	}
	return o, false
}

// adoptBans runs when the disk tier instance d comes up (at Open, and
// after a fault): it adds the pending bans recorded in d that the store
// does not know yet, and moves d's fill counter past every pending ban,
// so that every fill from now on is newer than all of them (a quarantined
// directory starts its fill ids over).
func (s *Store) adoptBans(d *diskTier) error {
	var found []*ban
	err := guard(func() error {
		it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixBan}, UpperBound: []byte{prefixBan + 1}})
		if err != nil {
			return err
		}
		for it.First(); it.Valid(); it.Next() {
			k := slices.Clone(it.Key())
			bn, err := decodeBan(k, it.Value())
			if err != nil {
				d.log.Warn("ignoring a corrupt ban record", "err", err)
				continue
			}
			found = append(found, bn)
		}
		return it.Close()
	})
	if err != nil {
		return fmt.Errorf("store: reading bans: %w", err)
	}
	bl := &s.bans
	bl.mu.Lock()
	defer bl.mu.Unlock()
	for _, bn := range found {
		if !slices.ContainsFunc(bl.list, func(b *ban) bool { return b.seq == bn.seq }) {
			bl.list = append(bl.list, bn)
		}
	}
	slices.SortFunc(bl.list, func(a, b *ban) int { return cmpUint(a.seq, b.seq) })
	var newest uint64
	for _, bn := range bl.list {
		bl.nextSeq = max(bl.nextSeq, bn.seq)
		newest = max(newest, bn.threshold)
	}
	bl.newest.Store(newest)
	if newest > 0 && d.nextFill.Load() < newest-1 {
		d.nextFill.Store(newest - 1)
	}
	return nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func banKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixBan}, seq)
}

func encodeBan(bn *ban) []byte {
	p := make([]byte, 0, 9+len(bn.re.String()))
	soft := byte(0)
	if bn.soft {
		soft = 1
	}
	p = append(p, soft)
	p = binary.BigEndian.AppendUint64(p, bn.threshold)
	p = append(p, bn.re.String()...)
	return sealed(p)
}

func decodeBan(k, v []byte) (*ban, error) {
	p, err := unseal(v)
	if err != nil {
		return nil, err
	}
	if len(k) != 9 || len(p) < 9 || p[0] > 1 {
		return nil, fmt.Errorf("malformed ban record: %w", ErrCorrupt)
	}
	re, err := regexp.Compile(string(p[9:]))
	if err != nil {
		return nil, fmt.Errorf("ban pattern: %v: %w", err, ErrCorrupt)
	}
	return &ban{seq: beUint64(k[1:]), threshold: beUint64(p[1:9]), re: re, soft: p[0] == 1}, nil
}

// wakeSweeper asks the sweeper to look at the pending bans.
func (s *Store) wakeSweeper() {
	select {
	case s.sweepCh <- struct{}{}:
	default:
	}
}

// sweepLoop applies pending bans in the background until Close.
func (s *Store) sweepLoop() {
	defer s.sweepWG.Done()
	for {
		select {
		case <-s.sweepDone:
			return
		case <-s.sweepCh:
		}
		if !s.opts.noSweep {
			s.sweep()
		}
	}
}

// sweep applies every pending ban to all stored objects and forgets each
// one that it finished.
func (s *Store) sweep() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.sweepDone:
			cancel()
		case <-ctx.Done():
		}
	}()
	s.bans.mu.RLock()
	pending := slices.Clone(s.bans.list)
	s.bans.mu.RUnlock()
	d := s.acquire()
	if d == nil {
		return // offline: bringing the tier up wakes the sweeper again
	}
	defer d.release()
	if d.readOnly {
		return
	}
	for _, bn := range pending {
		s.bans.mu.RLock()
		pubs := bn.pubs
		s.bans.mu.RUnlock()
		if err := wait(ctx, pubs); err != nil {
			return
		}
		n, err := d.purge(ctx, []Selector{{Pattern: bn.re, fillBelow: bn.threshold}}, bn.soft)
		s.bans.swept.Add(int64(n))
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("ban sweep failed; retried at the next ban, fault recovery or restart", "pattern", bn.re.String(), "err", err)
			}
			return
		}
		b := d.db.NewBatch()
		b.Delete(banKey(bn.seq), nil)
		err = d.commit(b, pebble.Sync)
		b.Close()
		if err != nil {
			return
		}
		s.bans.mu.Lock()
		s.bans.list = slices.DeleteFunc(s.bans.list, func(b *ban) bool { return b == bn })
		var newest uint64
		for _, b := range s.bans.list {
			newest = max(newest, b.threshold)
		}
		s.bans.newest.Store(newest)
		s.bans.mu.Unlock()
	}
}

// BanStats are the ban counters: pending bans, bans recorded since Open,
// and objects banned on lookup and by the sweeper.
type BanStats struct {
	Pending, Added, Lazy, Swept int64
}

// BanStats returns the ban counters.
func (s *Store) BanStats() BanStats {
	s.bans.mu.RLock()
	pending := len(s.bans.list)
	s.bans.mu.RUnlock()
	return BanStats{Pending: int64(pending), Added: s.bans.added.Load(), Lazy: s.bans.lazy.Load(), Swept: s.bans.swept.Load()}
}
