package purgestream

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerOptions configure an embedded NATS server.
type ServerOptions struct {
	// Listen is the client address, host:port; port 0 picks a free one.
	// Required.
	Listen string
	// StoreDir is the directory of JetStream's files (the stream survives
	// a restart in it). Required.
	StoreDir string
	// Name is the server's name in NATS. Default "cellar".
	Name string
}

// Server is a NATS server with JetStream running in this process, for a
// small cluster that needs nothing else: the other nodes connect to its
// URL. It is one server, not a NATS cluster: while it is down, purges are
// refused and the other nodes keep serving with their last applied state.
type Server struct {
	ns *server.Server
}

// StartServer starts an embedded NATS server and waits until it accepts
// connections (at most 10 s).
func StartServer(o ServerOptions) (*Server, error) {
	if o.StoreDir == "" {
		return nil, errors.New("purgestream: embedded NATS server: store_dir is required")
	}
	host, port, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("purgestream: embedded NATS server: listen %q: %v", o.Listen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return nil, fmt.Errorf("purgestream: embedded NATS server: listen %q: bad port", o.Listen)
	}
	if p == 0 {
		p = server.RANDOM_PORT
	}
	if o.Name == "" {
		o.Name = "cellar"
	}
	ns, err := server.NewServer(&server.Options{
		ServerName: o.Name,
		Host:       host,
		Port:       p,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoLog:      true,
		NoSigs:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("purgestream: embedded NATS server: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("purgestream: embedded NATS server on %s: not ready within 10s (address in use?)", o.Listen)
	}
	return &Server{ns: ns}, nil
}

// URL is the address clients connect to, nats://host:port.
func (s *Server) URL() string { return s.ns.ClientURL() }

// Close shuts the server down and waits until it has stopped.
func (s *Server) Close() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}
