// Package tcpdial builds the dialer the networked stores (PostgreSQL, SQL
// Server) connect with, so that a connection whose peer stopped answering is
// noticed by the client within a bound instead of the operating system's
// defaults (two hours of idle before the first keepalive probe on Linux;
// unacknowledged data retried for about 15 minutes). It holds no state.
package tcpdial

import (
	"fmt"
	"net"
	"time"
)

// Config is the client side of a database connection's TCP settings.
type Config struct {
	// KeepAlive is the idle time before the first keepalive probe and the
	// time between probes; three unanswered probes close the connection.
	// Zero keeps Go's defaults (15 s); negative turns keepalives off.
	KeepAlive time.Duration
	// UserTimeout (Linux TCP_USER_TIMEOUT) closes the connection when data
	// it sent stays unacknowledged this long. Zero keeps the system's
	// default. Ignored on other systems.
	UserTimeout time.Duration
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.UserTimeout < 0 {
		return fmt.Errorf("tcp user timeout %s is negative", c.UserTimeout)
	}
	if c.UserTimeout > 0 && c.UserTimeout < time.Millisecond {
		return fmt.Errorf("tcp user timeout %s is below a millisecond", c.UserTimeout)
	}
	return nil
}

// Dialer returns a dialer with c's settings.
func (c Config) Dialer() *net.Dialer {
	d := &net.Dialer{}
	switch {
	case c.KeepAlive < 0:
		d.KeepAlive = -1
	case c.KeepAlive > 0:
		d.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: c.KeepAlive, Interval: c.KeepAlive, Count: 3}
	}
	if c.UserTimeout > 0 {
		d.Control = userTimeout(c.UserTimeout)
	}
	return d
}
