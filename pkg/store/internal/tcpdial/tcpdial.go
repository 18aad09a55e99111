// Package tcpdial builds the dialer the networked stores (PostgreSQL, SQL
// Server) connect with, so that a connection whose peer stopped answering is
// noticed by the client within a bound instead of the operating system's
// defaults (two hours of idle before the first keepalive probe on Linux;
// unacknowledged data retried for about 15 minutes). It holds no state.
package tcpdial

import (
	"net"
	"time"

	"github.com/promocodes/promocodes/pkg/configkey"
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

// MaxUserTimeout is the largest UserTimeout: the socket option and
// PostgreSQL's tcp_user_timeout take milliseconds in an int.
const MaxUserTimeout = (1<<31 - 1) * time.Millisecond

// Validate checks the configuration, naming the fields by their keys
// ("keepAlive", "tcpUserTimeout"). Below a second, a keepalive probe or a
// user timeout would close healthy connections on an ordinary hiccup.
func (c Config) Validate() error {
	var errs configkey.List
	if c.KeepAlive > 0 && c.KeepAlive < time.Second {
		errs.Add("keepAlive", "must be 0 (15s), negative (off) or at least 1s, got %s", c.KeepAlive)
	}
	if c.UserTimeout != 0 && (c.UserTimeout < time.Second || c.UserTimeout > MaxUserTimeout) {
		errs.Add("tcpUserTimeout", "must be 0 (the system's default) or from 1s to %s, got %s", MaxUserTimeout, c.UserTimeout)
	}
	return errs.Err()
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
