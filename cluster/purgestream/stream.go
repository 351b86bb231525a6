// Package purgestream carries cellar's purges through a NATS JetStream
// stream, so that a node that was down when a purge was made applies it
// when it comes back. Every node publishes the purges its API accepts to
// the stream (the publish returns once the stream has stored the event,
// its PubAck) and is a durable consumer of it: it applies every event in
// stream order, its own included (a node does not purge before it
// publishes: its own events reach its store through the stream, like
// everyone else's, so every node applies the same events in the same
// order), remembers the last sequence it applied in a file of its data
// directory, and after a restart catches up to the stream's last
// sequence (CaughtUp) before it serves what it had stored.
//
// Applying is at least once and idempotent: an event is applied, the
// sequence saved (fsync), then acknowledged; a crash in between applies
// it again after the restart, which costs at most the refetch of an
// object stored since. Events the node can no longer get (the stream
// dropped them past MaxAge while the node was away) make it purge
// everything it has: it cannot know what they removed.
package purgestream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of Options.
const (
	DefaultStream  = "CELLAR_PURGES"
	DefaultSubject = "cellar.purges"
	DefaultMaxAge  = 7 * 24 * time.Hour
)

// The event's fields beside its body.
const (
	headerKind = "Cellar-Purge-Kind"
	headerNode = "Cellar-Purge-Node"
)

// KindAll is the event kind that purges everything; Apply receives it,
// with no body, when events were lost to the stream's MaxAge.
const KindAll = "all"

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("purgestream: closed")

// Event is one purge in the stream.
type Event struct {
	// Seq is the event's stream sequence (1, 2, ...).
	Seq uint64
	// Kind is the purge API's kind: url, prefix, tag, all or regex.
	Kind string
	// Body is the purge request body (JSON) that Apply parses; empty for
	// a purge of everything.
	Body []byte
	// Node is the node that published it; empty for the purge of
	// everything made after lost events.
	Node string
}

// Options configure a Stream. Zero values mean the documented default.
type Options struct {
	// URL is the NATS server's address (nats://host:port; a comma-separated
	// list for a NATS cluster). Required.
	URL string
	// Node is this node's name: its durable consumer's name, unique in the
	// cluster and the same across restarts. Letters, digits, - and _
	// (NodeName makes one from an address). Required.
	Node string
	// StateFile keeps the last applied sequence across restarts. Required.
	StateFile string
	// Apply applies events, in stream order, to this node's store and
	// returns the number of objects they affected. Consecutive events
	// come in one call when they are ready together (a catch-up: one
	// durable store write for many), at most 256; an event a Publish of
	// this node waits for comes alone, so that its count is its own. It
	// is called from one goroutine, possibly again for events applied
	// before a crash; an error is retried (with back-off) until it
	// succeeds: events are never skipped. Required.
	Apply func(ctx context.Context, evs []Event) (int, error)
	// Stream and Subject name the JetStream stream and its subject.
	// Defaults DefaultStream and DefaultSubject.
	Stream, Subject string
	// MaxAge is how long the stream keeps events, and how long a node's
	// consumer survives without the node. Default DefaultMaxAge (7 days).
	MaxAge time.Duration
	// ApplyWait bounds Publish: the PubAck, then the wait until this node
	// has applied the event. Default 5 s.
	ApplyWait time.Duration
	// Logger receives connection changes, catch-up and errors. Default
	// slog.Default().
	Logger *slog.Logger
}

var nodeRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// NodeName makes a node name from s (such as cluster.self,
// http://10.0.0.1:8080): every character other than a letter, a digit,
// - or _ becomes _.
func NodeName(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "http://"), "https://")
	return strings.Map(func(r rune) rune {
		if r < 128 && (r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, strings.TrimRight(s, "/"))
}

func (o *Options) ensureDefaults() {
	if o.Stream == "" {
		o.Stream = DefaultStream
	}
	if o.Subject == "" {
		o.Subject = DefaultSubject
	}
	if o.MaxAge == 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.ApplyWait == 0 {
		o.ApplyWait = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

func (o *Options) validate() error {
	var errs []error
	if o.URL == "" {
		errs = append(errs, errors.New("purgestream: URL is empty: want nats://host:port"))
	}
	if !nodeRE.MatchString(o.Node) {
		errs = append(errs, fmt.Errorf("purgestream: node name %q is invalid: want letters, digits, - and _ only", o.Node))
	}
	if o.StateFile == "" {
		errs = append(errs, errors.New("purgestream: StateFile is empty"))
	}
	if o.Apply == nil {
		errs = append(errs, errors.New("purgestream: Apply is nil"))
	}
	if o.MaxAge < 0 || o.ApplyWait < 0 {
		errs = append(errs, errors.New("purgestream: MaxAge and ApplyWait must not be negative"))
	}
	return errors.Join(errs...)
}

// Stream is one node's side of the purge stream: its publisher and its
// durable consumer. Its methods are safe for concurrent use.
type Stream struct {
	opts Options
	log  *slog.Logger
	nc   *nats.Conn
	js   jetstream.JetStream

	caughtUp     chan struct{} // closed once the node has caught up
	caughtUpOnce sync.Once
	started      time.Time

	applied atomic.Uint64 // last applied (and saved) sequence
	last    atomic.Uint64 // the stream's last sequence, as last seen

	mu      sync.Mutex          // protects waiters, lastErr, catchUp
	waiters map[string]chan int // by message id: Publish calls waiting for their event's local apply
	lastErr string              // the consumer's last error; empty after a success
	catchUp time.Duration       // how long the catch-up took

	// reconnected is ready after the connection to NATS came back: the
	// consumer then starts its next session at once instead of at the end
	// of its back-off.
	reconnected chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the consumer loop has returned
}

// New connects to NATS (in the background: an unreachable server is
// retried for ever, and nothing here waits for it) and starts the
// consumer. Close releases it.
func New(opts Options) (*Stream, error) {
	opts.ensureDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	st, err := loadState(opts.StateFile)
	if err != nil {
		opts.Logger.Warn("purge stream: state file", "err", err)
	}
	s := &Stream{
		opts:     opts,
		log:      opts.Logger.With("component", "purgestream", "node", opts.Node),
		caughtUp: make(chan struct{}),
		started:  time.Now(),
		waiters:  map[string]chan int{},
		done:     make(chan struct{}),

		reconnected: make(chan struct{}, 1),
	}
	s.nc, err = nats.Connect(opts.URL,
		nats.Name("cellar "+opts.Node),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		// No buffering while disconnected: a publish then fails at once
		// instead of landing later than its caller was told it failed.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				s.log.Warn("purge stream: disconnected from NATS", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			s.log.Info("purge stream: reconnected to NATS", "url", c.ConnectedUrlRedacted())
			select {
			case s.reconnected <- struct{}{}:
			default:
			}
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("purgestream: %s: %w", opts.URL, err)
	}
	if s.js, err = jetstream.New(s.nc); err != nil {
		s.nc.Close()
		return nil, fmt.Errorf("purgestream: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.run(st)
	return s, nil
}

// Close stops the consumer and closes the connection. Events not yet
// applied are applied after the next start.
func (s *Stream) Close() {
	s.cancel()
	<-s.done
	s.nc.Close()
}

// CaughtUp is closed once the node has applied every event the stream
// held when the consumer first reached it. It stays closed: a later
// disconnection shows as lag (Status), not as a new catch-up.
func (s *Stream) CaughtUp() <-chan struct{} { return s.caughtUp }

// Status is the node's view of the stream, for health and metrics.
type Status struct {
	Connected bool   `json:"connected"`
	CaughtUp  bool   `json:"caught_up"`
	Applied   uint64 `json:"applied"` // last sequence applied here
	Last      uint64 `json:"last"`    // the stream's last sequence, as last seen
	// Lag is Last - Applied: events this node has not applied yet.
	Lag uint64 `json:"lag"`
	// CatchUp is how long the start-up catch-up took, once done.
	CatchUp string `json:"catch_up,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Status reports the connection, the catch-up and the lag.
func (s *Stream) Status() Status {
	st := Status{Connected: s.nc.IsConnected(), Applied: s.applied.Load(), Last: s.last.Load()}
	if st.Last > st.Applied {
		st.Lag = st.Last - st.Applied
	}
	select {
	case <-s.caughtUp:
		st.CaughtUp = true
	default:
	}
	s.mu.Lock()
	st.Error = s.lastErr
	if st.CaughtUp {
		st.CatchUp = s.catchUp.Round(time.Millisecond).String()
	}
	s.mu.Unlock()
	return st
}

// Receipt is the outcome of a Publish.
type Receipt struct {
	// Seq is the event's stream sequence.
	Seq uint64
	// Purged is the number of objects the event affected on this node;
	// -1 when this node had not applied it within ApplyWait (it will).
	Purged int
	// Applied is the number of nodes whose consumer had acknowledged the
	// event when Publish returned (this node included once it applied
	// it); Nodes the number of durable consumers of the stream. -1 each
	// when NATS could not list them.
	Applied, Nodes int
}

// Publish puts a purge into the stream and returns once the stream has
// stored it (PubAck), then waits (within ApplyWait, and ctx) until this
// node has applied it, and counts the nodes that have. An error means the
// event may not be in the stream: the purge was not made.
func (s *Stream) Publish(ctx context.Context, kind string, body []byte) (Receipt, error) {
	if s.ctx.Err() != nil {
		return Receipt{}, ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.ApplyWait)
	defer cancel()
	var idb [12]byte
	rand.Read(idb[:])
	id := hex.EncodeToString(idb[:])
	ch := make(chan int, 1)
	s.mu.Lock()
	s.waiters[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiters, id)
		s.mu.Unlock()
	}()
	msg := nats.NewMsg(s.opts.Subject)
	msg.Data = body
	msg.Header.Set(headerKind, kind)
	msg.Header.Set(headerNode, s.opts.Node)
	ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id), jetstream.WithExpectStream(s.opts.Stream))
	if err != nil {
		return Receipt{}, fmt.Errorf("purgestream: publishing to %s: %w", s.opts.Stream, err)
	}
	raise(&s.last, ack.Sequence)
	rc := Receipt{Seq: ack.Sequence, Purged: -1}
	select {
	case n := <-ch:
		rc.Purged = n
	case <-ctx.Done():
	}
	rc.Applied, rc.Nodes = s.appliedBy(ctx, ack.Sequence)
	return rc, nil
}

// appliedBy counts the stream's durable consumers whose acknowledged
// floor has reached seq, and all of them.
func (s *Stream) appliedBy(ctx context.Context, seq uint64) (applied, nodes int) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	str, err := s.js.Stream(ctx, s.opts.Stream)
	if err != nil {
		return -1, -1
	}
	l := str.ListConsumers(ctx)
	for ci := range l.Info() {
		if ci.Config.Durable == "" {
			continue
		}
		nodes++
		if ci.AckFloor.Stream >= seq {
			applied++
		}
	}
	if l.Err() != nil {
		return -1, -1
	}
	return applied, nodes
}

// raise sets v to n when n is larger.
func raise(v *atomic.Uint64, n uint64) {
	for {
		o := v.Load()
		if n <= o || v.CompareAndSwap(o, n) {
			return
		}
	}
}

// setErr records the consumer's last error (logged when it changes) or
// clears it.
func (s *Stream) setErr(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	s.mu.Lock()
	changed := msg != s.lastErr
	s.lastErr = msg
	s.mu.Unlock()
	if changed && err != nil {
		s.log.Warn("purge stream: consumer failing; retrying", "err", err, "applied", s.applied.Load())
	}
}

// consumerBackoff is the consumer's wait between sessions: first at the
// start and after a session that made progress, afterReconnect after a
// reconnection to NATS (whose JetStream may still be recovering), doubling
// up to max while sessions fail.
var consumerBackoff = struct{ first, afterReconnect, max time.Duration }{
	100 * time.Millisecond, 100 * time.Millisecond, 5 * time.Second,
}

// run is the consumer: sessions, retried with back-off, until Close. A
// reconnection to NATS ends the wait: the events published since are
// applied at once rather than up to the longest back-off later.
func (s *Stream) run(st state) {
	defer close(s.done)
	c := &consumer{s: s, st: st}
	s.applied.Store(st.Applied)
	backoff := consumerBackoff.first
	for s.ctx.Err() == nil {
		progressed, err := c.session(s.ctx)
		if s.ctx.Err() != nil {
			return
		}
		s.setErr(err)
		if progressed {
			backoff = consumerBackoff.first
		}
		wait := time.NewTimer(backoff)
		select {
		case <-s.ctx.Done():
			wait.Stop()
			return
		case <-s.reconnected:
			wait.Stop()
			backoff = consumerBackoff.afterReconnect
			continue
		case <-wait.C:
		}
		backoff = min(2*backoff, consumerBackoff.max)
	}
}

// errReposition ends a session whose consumer delivered past an event it
// has not delivered: the next session starts it again after the last
// applied sequence.
var errReposition = errors.New("consumer skipped an event; repositioning it")

// consumer is the state of the consumer loop (one goroutine).
type consumer struct {
	s        *Stream
	st       state // as saved
	str      jetstream.Stream
	cons     jetstream.Consumer
	target   uint64 // the catch-up target: the stream's last sequence at the first session
	targeted bool
	unsaved  jetstream.Msg  // the last message handled, not saved nor acknowledged yet
	pending  []Event        // events received, not applied yet (a batch)
	notify   map[string]int // Publish waiters to answer once saved
}

// maxBatch bounds the events applied in one call of Options.Apply.
const maxBatch = 256

// session connects the consumer and applies events until an error or
// ctx ends. progressed reports whether it got as far as consuming.
func (c *consumer) session(ctx context.Context) (progressed bool, err error) {
	s := c.s
	if !s.nc.IsConnected() {
		return false, errors.New("not connected to NATS")
	}
	if err := c.setup(ctx); err != nil {
		return false, err
	}
	c.checkCaughtUp()
	s.setErr(nil)
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		batch, err := c.cons.Fetch(256, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			return true, err
		}
		err = c.drain(ctx, batch.Messages())
		cancel()
		if err == nil {
			err = batch.Error()
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			return true, err
		}
		if ctx.Err() == nil {
			c.refreshLast(ctx)
		}
	}
	return true, nil
}

// setup makes sure the stream and this node's consumer exist, detects a
// new stream and lost events, and places the consumer just after the
// last applied sequence.
func (c *consumer) setup(ctx context.Context) error {
	s := c.s
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	str, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: s.opts.Stream, Subjects: []string{s.opts.Subject},
		Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy,
		MaxAge: s.opts.MaxAge, Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return fmt.Errorf("stream %s: %w", s.opts.Stream, err)
	}
	c.str = str
	c.pending = c.pending[:0] // not applied: delivered again (the consumer is placed after the saved sequence)
	info := str.CachedInfo()
	if c.st.Stream != s.opts.Stream || !c.st.Created.Equal(info.Created) {
		if c.st.Applied > 0 {
			s.log.Warn("purge stream: the stream is not the one this node applied before; starting from its first event",
				"stream", s.opts.Stream, "was_created", c.st.Created, "created", info.Created, "was_applied", c.st.Applied)
		}
		c.st = state{Stream: s.opts.Stream, Created: info.Created}
		if err := c.save(c.st); err != nil {
			return err
		}
		s.applied.Store(0)
		s.last.Store(info.State.LastSeq)
	}
	if !c.targeted {
		c.target, c.targeted = info.State.LastSeq, true
	}
	raise(&s.last, info.State.LastSeq)
	if err := c.skipLost(ctx, info.State.FirstSeq, info.State.LastSeq); err != nil {
		return err
	}
	// The consumer starts after the last applied sequence; one that
	// delivered further (events handed out but not applied before a
	// crash or a disconnection) is placed there again.
	cons, err := str.Consumer(ctx, s.opts.Node)
	if err == nil && cons.CachedInfo().Delivered.Stream > c.st.Applied {
		if err = str.DeleteConsumer(ctx, s.opts.Node); err == nil {
			err = jetstream.ErrConsumerNotFound
		}
	}
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = str.CreateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:           s.opts.Node,
			Description:       "cellar node " + s.opts.Node + ": applies the purges",
			DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
			OptStartSeq:       c.st.Applied + 1,
			AckPolicy:         jetstream.AckAllPolicy,
			AckWait:           time.Minute,
			MaxAckPending:     1024,
			InactiveThreshold: s.opts.MaxAge,
		})
	}
	if err != nil {
		return fmt.Errorf("consumer %s: %w", s.opts.Node, err)
	}
	c.cons = cons
	return nil
}

// skipLost handles events this node can no longer get: when the stream
// has events after the last applied one but its first is further on, the
// ones between were dropped (MaxAge) unseen, and the node purges
// everything before it goes on.
func (c *consumer) skipLost(ctx context.Context, first, last uint64) error {
	if last <= c.st.Applied || first <= c.st.Applied+1 {
		return nil
	}
	s := c.s
	s.log.Warn("purge stream: events this node never applied are gone from the stream; purging everything stored here",
		"applied", c.st.Applied, "stream_first", first)
	if _, err := c.apply(ctx, []Event{{Kind: KindAll}}); err != nil {
		return err
	}
	st := c.st
	st.Applied = first - 1
	if err := c.save(st); err != nil {
		return err
	}
	c.st = st
	s.applied.Store(st.Applied)
	return nil
}

// drain applies the messages of one fetch in order: it gathers those
// that are ready, and applies, saves and acknowledges them whenever it
// would wait for the next one (or has a full batch).
func (c *consumer) drain(ctx context.Context, msgs <-chan jetstream.Msg) error {
	for {
		var m jetstream.Msg
		var ok bool
		select {
		case m, ok = <-msgs:
		default:
			if err := c.flush(ctx); err != nil {
				return err
			}
			m, ok = <-msgs
		}
		if !ok {
			return c.flush(ctx)
		}
		if err := c.handle(ctx, m); err != nil {
			return err
		}
		if len(c.pending) >= maxBatch {
			if err := c.applyPending(ctx); err != nil {
				return err
			}
		}
	}
}

// handle takes one message: an event to apply (gathered in pending), or
// one applied before (skipped).
func (c *consumer) handle(ctx context.Context, m jetstream.Msg) error {
	s := c.s
	md, err := m.Metadata()
	if err != nil {
		return fmt.Errorf("message without metadata: %w", err)
	}
	seq := md.Sequence.Stream
	raise(&s.last, seq+md.NumPending)
	next := s.applied.Load() + uint64(len(c.pending)) + 1
	switch {
	case seq < next: // delivered again: applied, or pending, already
		c.unsaved = m
		return nil
	case seq > next:
		// An event between was not delivered: dropped from the stream,
		// or handed out to a fetch that ended before it was applied.
		if err := c.flush(ctx); err != nil {
			return err
		}
		info, err := c.str.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.FirstSeq <= s.applied.Load()+1 {
			return errReposition
		}
		if err := c.skipLost(ctx, info.State.FirstSeq, info.State.LastSeq); err != nil {
			return err
		}
	}
	ev := Event{Seq: seq, Kind: m.Headers().Get(headerKind), Body: m.Data(), Node: m.Headers().Get(headerNode)}
	id := m.Headers().Get(jetstream.MsgIDHeader)
	waited := false
	if ev.Node == s.opts.Node && id != "" {
		s.mu.Lock()
		_, waited = s.waiters[id]
		s.mu.Unlock()
	}
	if !waited {
		c.pending = append(c.pending, ev)
		c.unsaved = m
		return nil
	}
	// A local Publish waits for this one: applied alone, for its count.
	if err := c.applyPending(ctx); err != nil {
		return err
	}
	n, err := c.apply(ctx, []Event{ev})
	if err != nil {
		return err
	}
	s.applied.Store(seq)
	c.unsaved = m
	if c.notify == nil {
		c.notify = map[string]int{}
	}
	c.notify[id] = n
	return nil
}

// applyPending applies the gathered events.
func (c *consumer) applyPending(ctx context.Context) error {
	if len(c.pending) == 0 {
		return nil
	}
	if _, err := c.apply(ctx, c.pending); err != nil {
		return err
	}
	c.s.applied.Store(c.pending[len(c.pending)-1].Seq)
	c.pending = c.pending[:0]
	return nil
}

// apply applies evs, retrying a failure with back-off until it succeeds
// or ctx ends.
func (c *consumer) apply(ctx context.Context, evs []Event) (int, error) {
	backoff := 50 * time.Millisecond
	for {
		n, err := c.s.opts.Apply(ctx, evs)
		if err == nil {
			return n, nil
		}
		c.s.setErr(fmt.Errorf("applying events %d-%d: %w", evs[0].Seq, evs[len(evs)-1].Seq, err))
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// flush saves the last applied sequence, then acknowledges it (and every
// event before it: AckAll), then answers the waiting publishers.
func (c *consumer) flush(ctx context.Context) error {
	if err := c.applyPending(ctx); err != nil {
		return err
	}
	if c.unsaved == nil {
		return nil
	}
	s := c.s
	st := c.st
	st.Applied = s.applied.Load()
	if st.Applied != c.st.Applied {
		if err := c.save(st); err != nil {
			return err
		}
		c.st = st
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := c.unsaved.DoubleAck(actx)
	cancel()
	if err != nil {
		// Saved: the event is applied here; NATS hands it out again
		// after AckWait, and it is skipped then.
		s.log.Debug("purge stream: acknowledgement failed", "seq", st.Applied, "err", err)
	}
	c.unsaved = nil
	if len(c.notify) > 0 {
		s.mu.Lock()
		for id, n := range c.notify {
			if ch, ok := s.waiters[id]; ok {
				ch <- n
			}
		}
		s.mu.Unlock()
		clear(c.notify)
	}
	c.checkCaughtUp()
	return nil
}

func (c *consumer) save(st state) error {
	if err := saveState(c.s.opts.StateFile, st); err != nil {
		return fmt.Errorf("saving the applied sequence: %w", err)
	}
	return nil
}

// checkCaughtUp closes CaughtUp once the applied sequence has reached the
// catch-up target.
func (c *consumer) checkCaughtUp() {
	if !c.targeted || c.s.applied.Load() < c.target {
		return
	}
	s := c.s
	s.caughtUpOnce.Do(func() {
		d := time.Since(s.started)
		s.mu.Lock()
		s.catchUp = d
		s.mu.Unlock()
		s.log.Info("purge stream: caught up", "applied", s.applied.Load(), "target", c.target, "took", d.Round(time.Millisecond))
		close(s.caughtUp)
	})
}

// refreshLast reads the stream's last sequence while idle, for the lag.
func (c *consumer) refreshLast(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if info, err := c.str.Info(ctx); err == nil {
		raise(&c.s.last, info.State.LastSeq)
	}
}
