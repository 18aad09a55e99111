package listen

import (
	"context"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// canSharePort: Linux spreads the connections of an address over the
// sockets bound to it with SO_REUSEPORT (one accept queue each).
const canSharePort = true

// listenShared listens on addr with SO_REUSEPORT.
func listenShared(addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(context.Background(), "tcp", addr)
}
