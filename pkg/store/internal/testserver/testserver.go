// Package testserver gives the store test helpers (postgrestest,
// sqlservertest) a database server: the one an environment variable names,
// or one container per test process, started by testcontainers-go on first
// use and terminated when the last test using it ends. Without either, tests
// skip with a reason that says how to run them. Safe for concurrent use.
package testserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
)

// Server is a database server for the tests of one process.
type Server struct {
	Env  string // the variable that names a server's DSN
	What string // "PostgreSQL": the helper's errors and skips say it
	// Hint says how to run the tests without Docker (a sentence).
	Hint string
	// Run starts a container (Started makes a module's answer one).
	Run func(ctx context.Context) (testcontainers.Container, error)
	// DSNOptions are the container DSN's options; Ready, if set, waits for
	// the server behind it to take logins.
	DSNOptions string
	Ready      func(ctx context.Context, dsn string) error

	mu    sync.Mutex
	users int
	c     testcontainers.Container
	dsn   string
	skip  string // why no container can be had; sticky for the process
}

// DSN returns the DSN of the server for tb: the environment's if set, else
// the shared container's (started if need be). Without either it skips tb,
// saying so.
func (s *Server) DSN(tb testing.TB) string {
	tb.Helper()
	if dsn := os.Getenv(s.Env); dsn != "" {
		return dsn
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.skip != "" {
		tb.Skip(s.skip)
	}
	if s.c == nil {
		if reason := unavailable(); reason != "" {
			s.skip = fmt.Sprintf("%s tests skipped: %s is not set and testcontainers cannot run (%s); %s",
				s.What, s.Env, reason, s.Hint)
			tb.Skip(s.skip)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		c, dsn, err := s.start(ctx)
		if err != nil {
			if c != nil {
				_ = testcontainers.TerminateContainer(c)
			}
			tb.Fatalf("%s test server: %v", s.What, err)
		}
		s.c, s.dsn = c, dsn
	}
	// The last test to finish terminates the container (testcontainers'
	// reaper covers crashed processes).
	s.users++
	tb.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.users--; s.users == 0 && s.c != nil {
			_ = testcontainers.TerminateContainer(s.c)
			s.c, s.dsn = nil, ""
		}
	})
	return s.dsn
}

func (s *Server) start(ctx context.Context) (testcontainers.Container, string, error) {
	c, err := s.Run(ctx)
	if err != nil {
		return c, "", fmt.Errorf("start container: %w", err)
	}
	dsn, err := c.(interface {
		ConnectionString(context.Context, ...string) (string, error)
	}).ConnectionString(ctx, s.DSNOptions)
	if err == nil && s.Ready != nil {
		err = s.Ready(ctx, dsn)
	}
	return c, dsn, err
}

// Started is a module's Run answer as Server.Run's: no container is nil.
func Started[C any, P interface {
	*C
	testcontainers.Container
}](c P, err error) (testcontainers.Container, error) {
	if c == nil {
		return nil, err
	}
	return c, err
}

var notIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// Name returns a name for tb alone, usable as an identifier: "t_", the end
// of tb's name (at most max characters) and a random suffix.
func Name(tb testing.TB, max int) string {
	base := strings.Trim(notIdent.ReplaceAllString(strings.ToLower(tb.Name()), "_"), "_")
	if len(base) > max {
		base = base[len(base)-max:]
	}
	return "t_" + base + "_" + Random()
}

// Random is 8 random hex digits.
func Random() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// unavailable does what testcontainers.SkipIfProviderIsNotHealthy does
// (which only takes a *testing.T), returning the reason ("" when Docker is
// usable) instead of skipping.
func unavailable() (reason string) {
	defer func() {
		if r := recover(); r != nil {
			reason = fmt.Sprintf("no Docker engine: %v", r)
		}
	}()
	provider, err := testcontainers.ProviderDefault.GetProvider()
	if err != nil {
		return fmt.Sprintf("no Docker engine: %v", err)
	}
	defer provider.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := provider.Health(ctx); err != nil {
		return fmt.Sprintf("no healthy Docker engine: %v", err)
	}
	return ""
}
