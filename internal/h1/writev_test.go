package h1_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/cellar-cache/cellar/internal/h1"
	"github.com/cellar-cache/cellar/internal/h1/h1test"
)

// TestLargeBodyGoesOutWithItsHeaderInOneWritev checks that a response
// whose body does not fit the write buffer leaves in one call with its
// header, through a wrapper's WriteBuffers, and that the bytes are right
// with and without one.
func TestLargeBodyGoesOutWithItsHeaderInOneWritev(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 100<<10/16)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/length" {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		}
		w.Write(body)
	})
	for _, tc := range []struct {
		vectored      bool
		path          string
		writes, calls int64 // per response
	}{
		{true, "/length", 0, 1},
		{true, "/chunked", 0, 1}, // the chunk's end stays buffered
		{false, "/length", 2, 0},
	} {
		t.Run(fmt.Sprintf("vectored=%v%s", tc.vectored, tc.path), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			cl := &h1test.WriteCounter{Listener: ln, Vectored: tc.vectored}
			s := h1.New(&http.Server{Handler: h})
			done := make(chan error, 1)
			go func() { done <- s.Serve(cl) }()
			defer func() {
				s.Close()
				if err := <-done; !errors.Is(err, http.ErrServerClosed) {
					t.Errorf("Serve: %v", err)
				}
			}()
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			const n = 3
			for i := range n {
				resp, err := client.Get("http://" + ln.Addr().String() + tc.path)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || !bytes.Equal(got, body) {
					t.Fatalf("response %d: %d bytes, %v; want the %d-byte body", i, len(got), err, len(body))
				}
			}
			// The last chunked response's end is written before the client
			// can read it whole, so every count is final here.
			w, v := cl.Counts()
			if tc.path == "/chunked" {
				w -= n // each response's last chunk and its end, in a write of their own
			}
			if w != n*tc.writes || v != n*tc.calls {
				t.Errorf("%d responses took %d writes and %d WriteBuffers calls; want %d and %d",
					n, w, v, n*tc.writes, n*tc.calls)
			}
		})
	}
}
