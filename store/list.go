package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Listed is one stored object as List reports it: the object (its body is
// not read) and whether it is resident in the memory tier.
type Listed struct {
	*Object
	InMemory bool
}

// List returns the stored objects that sel matches, sorted by key, at most
// limit of them (limit <= 0: no limit), for inspection. It reads metadata
// only and counts neither hits nor misses; looking an object up counts as
// a use for eviction, as a Get does.
func (s *Store) List(ctx context.Context, sel Selector, limit int) ([]Listed, error) {
	if sel.empty() {
		return nil, errors.New("store: empty selector: set URL, Prefix, Tag or All")
	}
	d := s.acquire()
	if d == nil {
		return nil, fmt.Errorf("store: list: the disk tier is offline: %w", ErrUnavailable)
	}
	defer d.release()
	set := make(map[string]struct{})
	if err := d.matching(sel, set); err != nil {
		return nil, fmt.Errorf("store: list: %w", err)
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []Listed
	for _, k := range keys {
		if limit > 0 && len(out) == limit {
			break
		}
		o, err := d.get(ctx, k, false)
		if errors.Is(err, ErrNotFound) {
			continue // removed since
		}
		if err != nil {
			return out, err
		}
		l := Listed{Object: o}
		if s.mem != nil {
			_, l.InMemory = s.mem.get(k, time.Time{})
		}
		out = append(out, l)
	}
	return out, nil
}
