package tcpdial

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestDialerSetsUserTimeoutAndKeepAlive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			time.Sleep(time.Second)
		}
	}()
	c, err := Config{KeepAlive: 7 * time.Second, UserTimeout: 1500 * time.Millisecond}.Dialer().
		DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if runtime.GOOS != "linux" {
		t.Skip("socket options are read back on Linux only")
	}
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ut, idle, intvl, cnt int
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		get := func(level, opt int) int {
			v, err := unix.GetsockoptInt(int(fd), level, opt)
			if err != nil {
				gerr = err
			}
			return v
		}
		ut = get(unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
		idle = get(unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
		intvl = get(unix.IPPROTO_TCP, unix.TCP_KEEPINTVL)
		cnt = get(unix.IPPROTO_TCP, unix.TCP_KEEPCNT)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if ut != 1500 || idle != 7 || intvl != 7 || cnt != 3 {
		t.Errorf("TCP_USER_TIMEOUT %d ms, keepalive idle %d s interval %d s count %d; want 1500, 7, 7, 3", ut, idle, intvl, cnt)
	}
	if err := (Config{UserTimeout: -time.Second}).Validate(); err == nil {
		t.Error("a negative user timeout validated")
	}
}
