// Package listen opens an HTTP server's listening sockets so that a burst of
// connections is not dropped by the kernel before the server accepts it.
package listen

import (
	"fmt"
	"net"
)

// acceptQueues is how many listening sockets a server accepts on
// where the system can share one address between several (Linux's
// SO_REUSEPORT; elsewhere one). Each has its own accept queue of
// net.core.somaxconn connections (4096 by default since Linux 5.4): a
// connection that finds its queue full has its SYN dropped, and its client
// tries again only after a second (then 3, 7 s). A burst of shoppers
// connects faster than a busy process is scheduled to accept (10,000
// connections at once overflowed one queue by about 2,000 on 2 cores), so
// the kernel spreads new connections over this many queues
// (docs/performance.md, "Bursts").
const acceptQueues = 4

// Listen listens on addr (host:port; port 0: one free port for all) with
// acceptQueues sockets where the system allows it, else one; serve each
// with the same http.Server (its Shutdown closes them all). An address in
// use is refused as net.Listen refuses it: the address is first bound
// without sharing, so a second process listening this way on the same
// address fails to start (only a process of the same user that sets
// SO_REUSEPORT itself could join it).
func Listen(addr string) ([]net.Listener, error) {
	for attempt := 1; ; attempt++ {
		lns, bound, err := listen(addr)
		_, port, _ := net.SplitHostPort(addr)
		if err == nil || bound == "" || port != "0" || attempt == 3 {
			return lns, err
		}
		// The free port chosen was taken by someone else between the
		// probe and the shared sockets: choose another.
	}
}

// listen is one attempt of Listen; bound is the address probed free ("" if
// the probe failed).
func listen(addr string) (lns []net.Listener, bound string, err error) {
	first, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	if acceptQueues == 1 || !canSharePort {
		return []net.Listener{first}, first.Addr().String(), nil
	}
	// The port is free (or was 0, and is now chosen): give it back and take
	// it again, shared, on acceptQueues sockets.
	bound = first.Addr().String()
	if err := first.Close(); err != nil {
		return nil, bound, err
	}
	lns = make([]net.Listener, 0, acceptQueues)
	for range acceptQueues {
		ln, err := listenShared(bound)
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return nil, bound, fmt.Errorf("listen on %s with %d sockets: %w", bound, acceptQueues, err)
		}
		lns = append(lns, ln)
	}
	return lns, bound, nil
}
