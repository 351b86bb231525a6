//go:build !linux

package poller

import (
	"errors"
	"syscall"
	"time"
)

// Poller needs epoll: New fails on other systems, where connections wait
// in their reads.
type Poller struct{}

// New reports that there is no poller here.
func New() (*Poller, error) { return nil, errors.New("poller: needs Linux's epoll") }

func (p *Poller) Close() error { return nil }
func (p *Poller) Register(c syscall.Conn) (*Waiter, error) {
	return nil, errors.New("poller: needs Linux's epoll")
}
func (p *Poller) Len() int      { return 0 }
func (p *Poller) Events() int64 { return 0 }

// Waiter is never made here.
type Waiter struct{}

func (w *Waiter) Wait(deadline time.Time) {}
func (w *Waiter) Wake()                   {}
func (w *Waiter) Unregister()             {}
