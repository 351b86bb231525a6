package purge

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/cellar-cache/cellar/cluster/purgestream"
	"github.com/cellar-cache/cellar/store"
)

// publish sends a parsed purge to the stream (Options.Stream) and answers
// once the stream has stored it: 200 with {"purged": N (this node's
// count), "stream": {"seq", "applied", "nodes"}}, or 503 when the stream
// did not store it (nothing was purged anywhere; the caller may retry).
// The purge itself is made by Apply, on every node.
func (a *API) publish(w http.ResponseWriter, r *http.Request, start time.Time, f fanOut) {
	body, err := forwardBody(f.kind, f.sels, f.soft)
	var rc purgestream.Receipt
	if err == nil {
		rc, err = a.opts.Stream.Publish(r.Context(), string(f.kind), body)
	}
	if err != nil {
		a.metrics.requests.WithLabelValues(f.label, "unpublished").Inc()
		a.log.Error("purge not published", "who", r.RemoteAddr, "token", f.token, "kind", f.label, "what", f.what, "soft", f.soft, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, result{Error: "purge not made: the purge stream did not store it: " + err.Error()})
		return
	}
	res := result{Purged: max(rc.Purged, 0), Stream: &streamResult{Seq: rc.Seq, Applied: rc.Applied, Nodes: rc.Nodes, Pending: rc.Purged < 0}}
	a.metrics.requests.WithLabelValues(f.label, "ok").Inc()
	a.log.Info("purge", "who", r.RemoteAddr, "token", f.token, "kind", f.label, "what", f.what, "soft", f.soft, "purged", res.Purged,
		"stream_seq", rc.Seq, "nodes_applied", rc.Applied, "nodes", rc.Nodes, "duration", a.now().Sub(start))
	writeJSON(w, http.StatusOK, res)
}

// Apply applies purge events of the stream, in order, to this node's
// store and returns the number of objects they affected: the stream's
// Options.Apply. Consecutive events of one kind and softness are one
// store purge (one durable write). A malformed event (not from a cellar
// of this version) is logged and skipped: applying it again would not
// help.
func (a *API) Apply(ctx context.Context, evs []purgestream.Event) (int, error) {
	total := 0
	var (
		sels  []store.Selector
		kind  string
		soft  bool
		first uint64 // the sequence of the group's first event
		last  uint64
	)
	apply := func() error {
		if len(sels) == 0 {
			return nil
		}
		n, err := a.purge(ctx, sels, soft)
		if err != nil {
			return fmt.Errorf("purge: %w", err)
		}
		total += n
		a.metrics.objects.WithLabelValues(kind).Add(float64(n))
		a.log.Debug("purge events applied", "seq", first, "to", last, "kind", kind, "what", describe(sels), "soft", soft, "purged", n)
		sels = nil
		return nil
	}
	for _, ev := range evs {
		s, sf, err := parseRequest(ev.Kind, ev.Body, a.opts.Key)
		if err != nil {
			a.log.Error("purge event skipped: undecodable", "seq", ev.Seq, "from", ev.Node, "kind", ev.Kind, "err", err)
			continue
		}
		if len(sels) > 0 && (ev.Kind != kind || sf != soft) {
			if err := apply(); err != nil {
				return total, err
			}
		}
		if len(sels) == 0 {
			kind, soft, first = ev.Kind, sf, ev.Seq
		}
		sels, last = append(sels, s...), ev.Seq
	}
	return total, apply()
}
