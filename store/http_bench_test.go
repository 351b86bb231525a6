package store

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkHTTPHit serves one 1 KiB object over real HTTP on 127.0.0.1 from
// the memory tier and from the disk tier only; compare their ns/op.
func BenchmarkHTTPHit(b *testing.B) {
	for _, tier := range []string{"memory", "disk"} {
		b.Run(tier, func(b *testing.B) {
			s := openTest(b, benchOptions(b, tier == "memory"))
			put(b, s, "k", body(1<<10, 1), CreateOptions{SizeHint: 1 << 10})
			if tier == "memory" {
				s.mem.c.Wait()
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				o, err := s.Get(r.Context(), "k")
				if err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				if body, ok := o.Body(); ok {
					w.Write(body)
					return
				}
				rd, err := s.NewReader(r.Context(), o, 0, -1)
				if err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				io.Copy(w, rd)
				rd.Close()
			}))
			defer srv.Close()
			client := srv.Client()
			client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req, _ := http.NewRequestWithContext(context.Background(), "GET", srv.URL, nil)
				for pb.Next() {
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if n != 1<<10 {
						b.Fatalf("%d byte body", n)
					}
				}
			})
		})
	}
}
