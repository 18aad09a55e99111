//go:build !linux

package listen

import (
	"errors"
	"net"
)

// canSharePort: elsewhere the HTTP server listens on one socket.
const canSharePort = false

func listenShared(string) (net.Listener, error) {
	return nil, errors.New("sharing a port between sockets is supported on Linux only")
}
