// Package poller lets idle keep-alive connections wait for their next
// request on an epoll instance of cellar's own, woken in the order their
// bytes arrived, instead of in Go's network poller, which hands the
// scheduler each batch of ready connections in reverse order and makes a
// keep-alive read pay a read(2) that fails with EAGAIN before it parks.
//
// It is only a hint: a woken connection reads with its net.Conn as
// before, so a spurious wake-up costs one EAGAIN read, never a wrong
// answer. Go's poller keeps the descriptor too.
package poller

import (
	"cmp"
	"errors"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A waiter's state.
const (
	stateNone    int32 = iota // nothing arrived since the last Wait
	stateReady                // an event arrived while nobody waited
	stateWaiting              // a goroutine waits on ch
	stateClosed               // Close was called: Wait returns at once
)

// epoch is when deadlines are counted from, on the monotonic clock (a
// change of the wall clock moves none).
var epoch = time.Now()

// Poller is an epoll instance and the goroutine that waits on it.
type Poller struct {
	epfd int
	file *os.File        // epfd, for Go's poller to say when events wait
	raw  syscall.RawConn // of file

	mu      sync.Mutex
	waiters map[uint64]*Waiter // by registration id
	next    uint64
	closed  bool

	events atomic.Int64 // events for registered connections

	// The sweep wakes the waiters whose deadline passed. It runs at the
	// earliest deadline of the waiters it saw (sweepAt, since epoch;
	// math.MaxInt64: none, or a sweep is running), and when a Wait with an
	// earlier deadline pokes it; with no deadline waiting it sleeps.
	sweepAt atomic.Int64
	poke    chan struct{} // buffered: a poke while one is pending is kept

	done      chan struct{} // closed by Close
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// New starts a poller; Close stops it.
func New() (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(epfd), "epoll")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	p := &Poller{epfd: epfd, file: f, raw: raw, waiters: map[uint64]*Waiter{}, next: 1,
		poke: make(chan struct{}, 1), done: make(chan struct{})}
	p.sweepAt.Store(math.MaxInt64)
	p.wg.Add(2)
	go p.loop()
	go p.sweep()
	return p, nil
}

// Close stops the poller and wakes every waiter; later Waits return at
// once.
func (p *Poller) Close() error {
	p.stop()
	var err error
	p.closeOnce.Do(func() {
		close(p.done)
		p.file.SetReadDeadline(time.Unix(1, 0)) // ends loop's wait
		p.wg.Wait()
		err = p.file.Close()
	})
	return err
}

// stop refuses new registrations and wakes every waiter for good.
func (p *Poller) stop() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	ws := make([]*Waiter, 0, len(p.waiters))
	for _, w := range p.waiters {
		ws = append(ws, w)
	}
	p.mu.Unlock()
	for _, w := range ws {
		w.wake(stateClosed)
	}
}

// Waiter is one connection registered with a Poller. Its methods are for
// one goroutine at a time, except Wake.
type Waiter struct {
	p        *Poller
	id       uint64
	rc       syscall.RawConn
	peek     func(fd uintptr) // sets readable; made once (see readable)
	readOK   bool             // peek's answer
	gone     atomic.Bool      // Unregister was called
	state    atomic.Int32
	deadline atomic.Int64 // since epoch; 0: none
	ch       chan struct{}
}

// ErrUnsupported is returned by Register for a connection whose
// descriptor cannot be reached.
var ErrUnsupported = errors.New("poller: connection has no descriptor")

// Register adds c's descriptor (edge-triggered, for input and hang-up);
// Unregister removes it, before c is closed.
func (p *Poller) Register(c syscall.Conn) (*Waiter, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, ErrUnsupported
	}
	w := &Waiter{p: p, rc: rc, ch: make(chan struct{}, 1)}
	w.peek = w.peekFD
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("poller: closed")
	}
	w.id = p.next
	p.next++
	p.waiters[w.id] = w
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET}
	setID(&ev, w.id)
	if err := w.ctl(unix.EPOLL_CTL_ADD, &ev); err != nil {
		p.forget(w)
		return nil, err
	}
	return w, nil
}

// Unregister removes w's descriptor from the poller, if the connection is
// still open (closing it removes it too); a second call does nothing.
func (w *Waiter) Unregister() {
	if w.gone.Swap(true) {
		return
	}
	w.p.forget(w)
	w.ctl(unix.EPOLL_CTL_DEL, nil)
}

// ctl applies op to w's descriptor in the poller's epoll instance. Both
// descriptors are held open meanwhile (RawConn.Control), so that neither
// number can be reused by another file under it: it fails once either is
// closed.
func (w *Waiter) ctl(op int, ev *unix.EpollEvent) error {
	var cerr, errno error
	err := w.p.raw.Control(func(epfd uintptr) {
		cerr = w.rc.Control(func(fd uintptr) {
			errno = unix.EpollCtl(int(epfd), op, int(fd), ev)
		})
	})
	if err = cmp.Or(err, cerr, errno); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// Events is the number of events for registered connections so far.
func (p *Poller) Events() int64 { return p.events.Load() }

// Len is the number of connections registered.
func (p *Poller) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiters)
}

func (p *Poller) forget(w *Waiter) {
	p.mu.Lock()
	delete(p.waiters, w.id)
	p.mu.Unlock()
}

// Wait returns once input or a hang-up arrived on the descriptor since the
// last Wait, deadline (zero: none) passed, Wake was called, or the poller
// closed.
func (w *Waiter) Wait(deadline time.Time) {
	// An event that came while nobody waited may be for bytes the last
	// read already took: wait unless bytes (or the end) are there.
	if w.state.CompareAndSwap(stateReady, stateNone) && w.readable() {
		return
	}
	var d int64
	if !deadline.IsZero() {
		d = max(int64(deadline.Sub(epoch)), 1)
	}
	w.deadline.Store(d)
	if !w.state.CompareAndSwap(stateNone, stateWaiting) {
		// Ready arrived meanwhile, or closed.
		w.state.CompareAndSwap(stateReady, stateNone)
		return
	}
	if d != 0 && d < w.p.sweepAt.Load() {
		// The sweep is not planned before d (or is running, and may not
		// have seen this Wait): tell it.
		select {
		case w.p.poke <- struct{}{}:
		default:
		}
	}
	<-w.ch
}

// readable reports whether a read would not block (w.peek, made once
// per connection: a closure made here would be allocated at each call).
func (w *Waiter) readable() bool {
	w.readOK = true
	w.rc.Control(w.peek)
	return w.readOK
}

// peekFD sets w.readOK to whether a read of fd would not block.
func (w *Waiter) peekFD(fd uintptr) {
	var b [1]byte
	_, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	w.readOK = errno != unix.EAGAIN
}

// Wake ends a Wait in progress, and the next Waits (for a connection
// being closed).
func (w *Waiter) Wake() { w.wake(stateClosed) }

// wake moves w to st, waking its waiter.
func (w *Waiter) wake(st int32) {
	if w.ready(st) {
		w.ch <- struct{}{}
	}
}

// ready moves w to st (stateReady: an event, remembered unless a Wait is
// in progress; stateClosed: for good) and reports whether a Wait was in
// progress, which the caller must then end with a send on ch.
func (w *Waiter) ready(st int32) bool {
	for {
		s := w.state.Load()
		switch {
		case s == stateClosed:
			return false
		case s == stateWaiting:
			next := stateNone
			if st == stateClosed {
				next = stateClosed
			}
			if w.state.CompareAndSwap(s, next) {
				return true
			}
		case s == st:
			return false
		default:
			if w.state.CompareAndSwap(s, st) {
				return false
			}
		}
	}
}

// loop waits for events and wakes their waiters in the order of the
// events.
func (p *Poller) loop() {
	defer p.wg.Done()
	events := make([]unix.EpollEvent, 256)
	wake := make([]*Waiter, 0, len(events))
	// One closure for every wait: made in the loop it would be allocated
	// at each batch.
	var n int
	var werr error
	poll := func(fd uintptr) bool {
		n, werr = unix.EpollWait(int(fd), events, 0)
		if werr == unix.EINTR {
			n, werr = 0, nil
		}
		return n > 0 || werr != nil
	}
	for {
		err := p.raw.Read(poll)
		if err != nil || werr != nil {
			// Closed, or epoll failed (which it does only when misused):
			// the connections go back to waiting in their reads.
			p.stop()
			return
		}
		wake = wake[:0]
		p.mu.Lock()
		for i := range events[:n] {
			w := p.waiters[getID(&events[i])]
			if w == nil {
				continue
			}
			p.events.Add(1)
			if w.ready(stateReady) {
				wake = append(wake, w)
			}
		}
		p.mu.Unlock()
		wakeInOrder(wake)
		clear(wake)
		// The woken connections run before the next epoll_wait, as an
		// event loop serves one batch before it polls again.
		runtime.Gosched()
	}
}

// wakeInOrder makes ws runnable so that they run in their order: a woken
// goroutine goes to the front of the run queue (runnext), pushing the one
// there to the back, so the first is woken last.
func wakeInOrder(ws []*Waiter) {
	if len(ws) == 0 {
		return
	}
	for _, w := range ws[1:] {
		w.ch <- struct{}{}
	}
	ws[0].ch <- struct{}{}
}

// sweep wakes the waiters past their deadline, at the earliest deadline
// it knows of (see sweepAt).
func (p *Poller) sweep() {
	defer p.wg.Done()
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	var due []*Waiter
	for {
		select {
		case <-p.done:
			return
		case <-p.poke:
		case <-t.C:
		}
		// A Wait from now on pokes: this pass may miss it.
		p.sweepAt.Store(math.MaxInt64)
		now := int64(time.Since(epoch))
		next := int64(math.MaxInt64)
		due = due[:0]
		p.mu.Lock()
		for _, w := range p.waiters {
			if w.state.Load() != stateWaiting {
				continue
			}
			switch d := w.deadline.Load(); {
			case d == 0:
			case d <= now:
				due = append(due, w)
			case d < next:
				next = d
			}
		}
		p.mu.Unlock()
		for _, w := range due {
			if w.ready(stateReady) {
				w.ch <- struct{}{}
			}
		}
		clear(due)
		p.sweepAt.Store(next)
		if next != math.MaxInt64 {
			t.Reset(time.Duration(next) - time.Since(epoch))
		}
	}
}

// setID and getID keep a registration id in an event's data.
func setID(ev *unix.EpollEvent, id uint64) {
	ev.Fd, ev.Pad = int32(uint32(id)), int32(uint32(id>>32))
}

func getID(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}
