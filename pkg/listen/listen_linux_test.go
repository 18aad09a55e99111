package listen

import (
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A burst of connections larger than one accept queue (net.core.somaxconn)
// all complete their handshake while the server has not accepted any yet
// (a busy process), and are all accepted afterwards: the kernel spreads them
// over Listen's sockets. On one socket the connections past its queue have
// their SYNs dropped and wait a second or more to try again (here: time
// out).
func TestListenHoldsABurstPastOneAcceptQueue(t *testing.T) {
	data, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		t.Skipf("accept queue size unknown (%v)", err)
	}
	somaxconn, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || somaxconn > 8192 {
		t.Skipf("net.core.somaxconn is %q: a queue this test cannot fill cheaply", strings.TrimSpace(string(data)))
	}
	// Half again one queue: past one socket's queue, well within
	// acceptQueues of them however the kernel spreads the connections.
	n := somaxconn*3/2 + 100
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if need := uint64(n + 200); lim.Cur < need {
		if lim.Max < need {
			t.Skipf("need %d open files, the hard limit is %d", need, lim.Max)
		}
		old := lim
		lim.Cur = need
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Skipf("need %d open files: %v", need, err)
		}
		t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	}
	lns, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	addr := lns[0].Addr().String()
	// Nobody accepts yet: every connection must find room in a queue. A SYN
	// dropped is retried after 1 s, then 3 s: a connection not open in 2.5 s
	// found its queue full (as did any retry).
	conns := make([]net.Conn, n)
	var failed sync.Map
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", addr, 2500*time.Millisecond)
			if err != nil {
				failed.Store(i, err)
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	nfailed := 0
	var example error
	failed.Range(func(_, v any) bool {
		nfailed++
		example = v.(error)
		return true
	})
	if nfailed > 0 {
		t.Errorf("%d of %d connections were not taken while nothing accepted (one queue holds %d; %d sockets): %v",
			nfailed, n, somaxconn, len(lns), example)
	}
	// Then every connection that opened is accepted.
	var accepted sync.WaitGroup
	var mu sync.Mutex
	got := 0
	for _, ln := range lns {
		accepted.Go(func() {
			for {
				_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(500 * time.Millisecond))
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
				mu.Lock()
				got++
				mu.Unlock()
			}
		})
	}
	accepted.Wait()
	if want := n - nfailed; got != want {
		t.Errorf("accepted %d connections, want the %d opened", got, want)
	}
	t.Logf("%d connections, %d sockets, accept queue %d each: %d opened before any accept, %d accepted",
		n, len(lns), somaxconn, n-nfailed, got)
}

// An address in use is refused as net.Listen refuses it, shared sockets or
// not: a second server on the same address does not start.
func TestListenRefusesAnAddressInUse(t *testing.T) {
	lns, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	if again, err := Listen(lns[0].Addr().String()); err == nil {
		for _, ln := range again {
			ln.Close()
		}
		t.Fatalf("listened twice on %s", lns[0].Addr())
	}
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if again, err := Listen(other.Addr().String()); err == nil {
		for _, ln := range again {
			ln.Close()
		}
		t.Fatalf("listened on %s, which net.Listen holds", other.Addr())
	}
}
