package proxy

import (
	"context"
	"time"
)

// Drain waits until s has no fill, background revalidation or coding job
// in progress, or until ctx ends. A server replaced by a config reload is
// drained before Close, so that what it was storing for requests already
// answered is stored, not cancelled. It polls: the work it waits for ends
// on its own, within FillTimeout.
func (s *Server) Drain(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for s.flights.active() > 0 || !s.codings.idle() || len(s.bgSlots) > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// active is the number of flights not yet ended (fills and revalidations
// in progress, until their object is committed or abandoned).
func (g *flightGroup) active() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.m)
}

// idle reports whether no coding job (fast or best pass) is running.
func (v *codingJobs) idle() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.running == 0 && !v.best.Load()
}
