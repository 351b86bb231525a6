package purgestream

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// bound is how long a test waits for something it expects, on a loaded
// machine.
const bound = 30 * time.Second

// recorder is a node's Apply: it records the events it got.
type recorder struct {
	mu     sync.Mutex
	events []Event
	calls  int // successful calls
	fail   int // the next fail calls fail
}

func (r *recorder) apply(_ context.Context, evs []Event) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return 0, fmt.Errorf("store unavailable")
	}
	r.events = append(r.events, evs...)
	r.calls++
	n := 0
	for _, ev := range evs {
		n += len(ev.Body)
	}
	return n, nil
}

// bodies lists the bodies applied, in order.
func (r *recorder) bodies() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b []string
	for _, ev := range r.events {
		b = append(b, ev.Kind+":"+string(ev.Body))
	}
	return b
}

func startServer(t *testing.T, dir, listen string) *Server {
	t.Helper()
	srv, err := StartServer(ServerOptions{Listen: listen, StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// node starts a Stream named name with its state in dir.
func node(t *testing.T, url, name, dir string, r *recorder) *Stream {
	t.Helper()
	s, err := New(Options{URL: url, Node: name, StateFile: filepath.Join(dir, name+".json"), Apply: r.apply, ApplyWait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitFor polls cond (every few milliseconds) up to bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", bound, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitCaughtUp(t *testing.T, s *Stream) {
	t.Helper()
	select {
	case <-s.CaughtUp():
	case <-time.After(bound):
		t.Fatalf("%s did not catch up within %v: %+v", s.opts.Node, bound, s.Status())
	}
}

func TestEveryNodeAppliesEveryEventInStreamOrder(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, filepath.Join(dir, "nats"), "127.0.0.1:0")
	defer srv.Close()
	recs := []*recorder{{}, {}, {}}
	var nodes []*Stream
	for i, name := range []string{"a", "b", "c"} {
		s := node(t, srv.URL(), name, dir, recs[i])
		defer s.Close()
		waitCaughtUp(t, s)
		nodes = append(nodes, s)
	}
	var want []string
	for i := range 6 {
		body := fmt.Sprintf(`{"urls":["http://x/%d"]}`, i)
		rc, err := nodes[i%3].Publish(context.Background(), "url", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if rc.Seq != uint64(i+1) || rc.Purged != len(body) || rc.Nodes != 3 || rc.Applied < 1 {
			t.Errorf("publish %d: receipt %+v, want seq %d, purged %d (applied here), 3 nodes, at least 1 applied", i, rc, i+1, len(body))
		}
		want = append(want, "url:"+body)
	}
	for i, r := range recs {
		waitFor(t, "every node applies the 6 events", func() bool { return len(r.bodies()) == 6 })
		if got := r.bodies(); !slices.Equal(got, want) {
			t.Errorf("node %d applied %q, want %q in stream order", i, got, want)
		}
		waitFor(t, "lag 0", func() bool { st := nodes[i].Status(); return st.Applied == 6 && st.Lag == 0 && st.CaughtUp })
	}
	// Every consumer acknowledged: a publish now counts all three nodes
	// once they have applied it.
	rc, err := nodes[0].Publish(context.Background(), "tag", []byte(`{"tags":["t"]}`))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all three apply event 7", func() bool {
		a, n := nodes[0].appliedBy(context.Background(), rc.Seq)
		return a == 3 && n == 3
	})
}

// A node that was stopped applies, once started again on the same state
// file, exactly the events published while it was away, then is caught
// up; the events before are not applied twice.
func TestRestartedNodeAppliesOnlyWhatItMissed(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, filepath.Join(dir, "nats"), "127.0.0.1:0")
	defer srv.Close()
	ra, rc := &recorder{}, &recorder{}
	a := node(t, srv.URL(), "a", dir, ra)
	defer a.Close()
	c := node(t, srv.URL(), "c", dir, rc)
	waitCaughtUp(t, a)
	waitCaughtUp(t, c)
	if _, err := a.Publish(context.Background(), "url", []byte("before")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c applies the first event", func() bool { return len(rc.bodies()) == 1 })
	waitFor(t, "c saves it", func() bool { st, _ := loadState(filepath.Join(dir, "c.json")); return st.Applied == 1 })
	c.Close()

	for i := range 50 {
		if _, err := a.Publish(context.Background(), "url", fmt.Appendf(nil, "away-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	rc2 := &recorder{fail: 2} // the store fails twice: retried, never skipped
	start := time.Now()
	c = node(t, srv.URL(), "c", dir, rc2)
	defer c.Close()
	waitCaughtUp(t, c)
	t.Logf("catch-up of 50 events after a restart: %v, in %d calls of Apply", time.Since(start), rc2.calls)
	got := rc2.bodies()
	if len(got) != 50 || got[0] != "url:away-0" || got[49] != "url:away-49" {
		t.Fatalf("restarted node applied %d events (%q...), want the 50 published while it was away, in order", len(got), got[:min(3, len(got))])
	}
	if st := c.Status(); st.Applied != 51 || st.Lag != 0 {
		t.Errorf("status %+v, want applied 51, lag 0", st)
	}
}

// Events the stream dropped while a node was away make the node purge
// everything when it comes back: it cannot know what they removed.
func TestLostEventsPurgeEverything(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, filepath.Join(dir, "nats"), "127.0.0.1:0")
	defer srv.Close()
	ra, rc := &recorder{}, &recorder{}
	a := node(t, srv.URL(), "a", dir, ra)
	defer a.Close()
	c := node(t, srv.URL(), "c", dir, rc)
	waitCaughtUp(t, c)
	c.Close()
	for i := range 3 {
		if _, err := a.Publish(context.Background(), "url", fmt.Appendf(nil, "e%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// The stream loses its events (as MaxAge would), then gets one more.
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	str, err := js.Stream(context.Background(), DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := str.Purge(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(context.Background(), "url", []byte("after")); err != nil {
		t.Fatal(err)
	}
	rc2 := &recorder{}
	c = node(t, srv.URL(), "c", dir, rc2)
	defer c.Close()
	waitCaughtUp(t, c)
	if got, want := rc2.bodies(), []string{"all:", "url:after"}; !slices.Equal(got, want) {
		t.Errorf("node back after lost events applied %q, want %q", got, want)
	}
}

// restartFixture is a NATS server and two nodes, a and b, both caught up
// and having applied a's purge "one"; a test stops the server and starts
// it again on its port and store directory.
type restartFixture struct {
	natsDir, port string
	srv           *Server
	a, b          *Stream
	rb            *recorder // b's applied events
}

func newRestartFixture(t *testing.T) *restartFixture {
	t.Helper()
	dir := t.TempDir()
	f := &restartFixture{natsDir: filepath.Join(dir, "nats"), rb: &recorder{}}
	f.srv = startServer(t, f.natsDir, "127.0.0.1:0")
	_, f.port, _ = net.SplitHostPort(f.srv.URL()[len("nats://"):])
	f.a = node(t, f.srv.URL(), "a", dir, &recorder{})
	t.Cleanup(f.a.Close)
	f.b = node(t, f.srv.URL(), "b", dir, f.rb)
	t.Cleanup(f.b.Close)
	waitCaughtUp(t, f.a)
	waitCaughtUp(t, f.b)
	if _, err := f.a.Publish(context.Background(), "url", []byte("one")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b applies one", func() bool { return len(f.rb.bodies()) == 1 })
	return f
}

// restart starts the server again (it was closed) and publishes body from
// a once a has reconnected.
func (f *restartFixture) restart(t *testing.T, body string) {
	t.Helper()
	f.srv = startServer(t, f.natsDir, "127.0.0.1:"+f.port)
	t.Cleanup(f.srv.Close)
	waitFor(t, "a reconnects", func() bool { return f.a.Status().Connected })
	var err error
	for range 50 { // the first publishes may race the stream's recovery
		if _, err = f.a.Publish(context.Background(), "url", []byte(body)); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal(err)
}

// The stream lives in the NATS server's store directory: a NATS restart
// keeps it (same identity, so nothing is applied twice), and the nodes
// reconnect by themselves and go on.
func TestNATSRestartNodesReconnect(t *testing.T) {
	f := newRestartFixture(t)
	f.srv.Close()
	waitFor(t, "b sees the disconnection", func() bool { return !f.b.Status().Connected })
	if _, err := f.a.Publish(context.Background(), "url", []byte("lost")); err == nil {
		t.Error("publish with NATS down succeeded")
	}
	f.restart(t, "two")
	waitFor(t, "b applies two", func() bool { return len(f.rb.bodies()) >= 2 })
	if got := f.rb.bodies(); !slices.Equal(got[:2], []string{"url:one", "url:two"}) || len(got) > 2 && got[2] != "url:two" {
		t.Errorf("b applied %q after the NATS restart, want one then two (one not again)", got)
	}
}

// TestReconnectEndsTheConsumersBackOff: a consumer waiting out its
// back-off after NATS went away starts again as soon as the connection is
// back. Here the back-off is a minute, longer than the test waits, but
// after a reconnection (consumerBackoff.afterReconnect).
func TestReconnectEndsTheConsumersBackOff(t *testing.T) {
	saved := consumerBackoff
	consumerBackoff.first, consumerBackoff.max = time.Minute, time.Minute
	// A cleanup, not a defer: it must run after the nodes' (their
	// consumers read it), and cleanups run last first.
	t.Cleanup(func() { consumerBackoff = saved })
	f := newRestartFixture(t)
	f.srv.Close()
	// b's session fails, and b waits its minute.
	waitFor(t, "b's consumer fails", func() bool { return f.b.Status().Error != "" })
	f.restart(t, "two")
	waitFor(t, "b applies two before its back-off ends", func() bool { return len(f.rb.bodies()) >= 2 })
}

// With NATS unreachable at start the node is not caught up, says so,
// and refuses to publish within its wait.
func TestUnreachableNATSIsNotCaughtUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://" + ln.Addr().String()
	ln.Close()
	s, err := New(Options{URL: url, Node: "a", StateFile: filepath.Join(t.TempDir(), "a.json"), Apply: (&recorder{}).apply, ApplyWait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Publish(context.Background(), "url", []byte("x")); err == nil {
		t.Error("publish without NATS succeeded")
	}
	select {
	case <-s.CaughtUp():
		t.Error("caught up without NATS")
	default:
	}
	if st := s.Status(); st.Connected || st.CaughtUp {
		t.Errorf("status %+v, want not connected, not caught up", st)
	}
}

func TestOptionsErrors(t *testing.T) {
	_, err := New(Options{Node: "a b"})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"URL is empty", `node name "a b" is invalid`, "StateFile is empty", "Apply is nil"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if got := NodeName("http://10.0.0.1:8080/"); got != "10_0_0_1_8080" {
		t.Errorf("NodeName = %q", got)
	}
}
