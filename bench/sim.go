package bench

import (
	"context"
)

// Policy is a cache under simulation: Access looks an object up, admits it
// on a miss if the policy wants to, and reports whether it was a hit.
// Implementations are driven from one goroutine.
type Policy interface {
	Name() string
	Access(key uint64, size int64) bool
}

var (
	_ Policy = (*LRU)(nil)
	_ Policy = (*OPT)(nil)
	_ Policy = (*Ristretto)(nil)
)

// Result is the outcome of replaying a trace through one policy at one
// capacity. Its JSON form is what `cellar bench sim -json` prints.
type Result struct {
	Trace  string `json:"trace"`
	Policy string `json:"policy"`
	// Capacity is in objects, or in bytes when Bytes is true.
	Capacity int64 `json:"capacity"`
	Bytes    bool  `json:"capacity_in_bytes"`

	Requests     int64   `json:"requests"`
	Hits         int64   `json:"hits"`
	HitRatio     float64 `json:"hit_ratio"`
	RequestBytes int64   `json:"request_bytes"`
	HitBytes     int64   `json:"hit_bytes"`
	ByteHitRatio float64 `json:"byte_hit_ratio"`

	// TraceObjects and TraceMaxHitRatio describe the trace: its distinct
	// objects and the hit ratio of an unbounded cache.
	TraceObjects     int64   `json:"trace_objects"`
	TraceMaxHitRatio float64 `json:"trace_max_hit_ratio"`
	// ElapsedSeconds is the wall time of the replay.
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// Resident is what the store held at the end (cellar policy only).
	Resident *Resident `json:"resident,omitempty"`
}

// Resident counts what a store holds against its budgets, in bytes as the
// store charges them (body, metadata and per-record overhead).
type Resident struct {
	MemoryObjects int64 `json:"memory_objects"`
	MemoryBytes   int64 `json:"memory_bytes"`
	MemoryBudget  int64 `json:"memory_budget"`
	DiskObjects   int64 `json:"disk_objects"`
	DiskBytes     int64 `json:"disk_bytes"`
	// DiskBudget is the disk tier's budget for objects: DiskBytes minus
	// its fixed overheads (store.Stats.DiskObjectBudget).
	DiskBudget int64 `json:"disk_budget"`
}

// residentReporter is a Policy backed by a store that can say what it holds.
type residentReporter interface {
	resident() *Resident
}

// Count adds one request to the result.
func (r *Result) Count(size int64, hit bool) {
	r.Requests++
	r.RequestBytes += size
	if hit {
		r.Hits++
		r.HitBytes += size
	}
}

// finish computes the ratios.
func (r *Result) finish() {
	if r.Requests > 0 {
		r.HitRatio = float64(r.Hits) / float64(r.Requests)
	}
	if r.RequestBytes > 0 {
		r.ByteHitRatio = float64(r.HitBytes) / float64(r.RequestBytes)
	}
}

// Replay feeds every request of reqs to p and counts hits. It checks ctx
// every few thousand requests and returns ctx.Err() if it is done; progress,
// if not nil, is called with the number of requests replayed so far at the
// same points.
func Replay(ctx context.Context, p Policy, reqs []Request, progress func(done int)) (Result, error) {
	res := Result{Policy: p.Name()}
	for i, r := range reqs {
		if i&0xfff == 0 && i > 0 {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			if progress != nil {
				progress(i)
			}
		}
		res.Count(r.Size, p.Access(r.Key, r.Size))
	}
	if progress != nil {
		progress(len(reqs))
	}
	res.finish()
	return res, nil
}
