// Package postgrestest gives integration tests a PostgreSQL server and an
// isolated schema per test, so that tests of any package can run against
// PostgreSQL in parallel.
//
// The server is PROMOCODES_TEST_POSTGRES_DSN when set; otherwise one
// postgres:16-alpine container per test process, started by testcontainers-go
// on first use and terminated when the last test using it ends. Without
// either, tests skip with the reason. All functions are safe for concurrent
// use.
package postgrestest

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

	"github.com/jackc/pgx/v5"
	"github.com/testcontainers/testcontainers-go"

	"github.com/promocodes/promocodes/pkg/store/internal/dockercheck"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
)

// EnvDSN names the environment variable with the DSN of a server to use
// instead of a container.
const EnvDSN = "PROMOCODES_TEST_POSTGRES_DSN"

// Image is the container image used when EnvDSN is not set.
const Image = "postgres:16-alpine"

var shared struct {
	mu        sync.Mutex
	users     int
	container *tcpostgres.PostgresContainer
	dsn       string
	skip      string // why no container can be had; sticky for the process
}

// DSN returns the DSN of a PostgreSQL server for tb: EnvDSN if set, else the
// shared container (started if need be). Without EnvDSN and without a
// working Docker engine it skips tb, saying so.
func DSN(tb testing.TB) string {
	tb.Helper()
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return dsn
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.skip != "" {
		tb.Skip(shared.skip)
	}
	if shared.container == nil {
		if reason := dockercheck.Unavailable(); reason != "" {
			shared.skip = fmt.Sprintf("PostgreSQL tests skipped: %s is not set and testcontainers cannot run (%s); "+
				"set %s=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run them against a server",
				EnvDSN, reason, EnvDSN)
			tb.Skip(shared.skip)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		c, err := tcpostgres.Run(ctx, Image,
			tcpostgres.WithDatabase("test"), tcpostgres.WithUsername("postgres"), tcpostgres.WithPassword("postgres"),
			tcpostgres.BasicWaitStrategies())
		if err != nil {
			if c != nil {
				_ = testcontainers.TerminateContainer(c)
			}
			tb.Fatalf("postgrestest: start %s container: %v", Image, err)
		}
		dsn, err := c.ConnectionString(ctx, "sslmode=disable")
		if err != nil {
			_ = testcontainers.TerminateContainer(c)
			tb.Fatalf("postgrestest: container connection string: %v", err)
		}
		shared.container, shared.dsn = c, dsn
	}
	// The container is shared by all tests of the process; the last one to
	// finish terminates it (testcontainers' reaper covers crashed processes).
	shared.users++
	tb.Cleanup(release)
	return shared.dsn
}

func release() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.users--
	if shared.users == 0 && shared.container != nil {
		_ = testcontainers.TerminateContainer(shared.container)
		shared.container, shared.dsn = nil, ""
	}
}

var notIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// Schema returns a schema name unique to tb (derived from its name plus a
// random suffix) for the Schema field of a store's config, and drops the
// schema, with everything in it, when tb ends. It does not create the schema:
// the store does. It skips tb like DSN.
func Schema(tb testing.TB) string {
	tb.Helper()
	dsn := DSN(tb)
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	base := strings.Trim(notIdent.ReplaceAllString(strings.ToLower(tb.Name()), "_"), "_")
	if len(base) > 40 {
		base = base[len(base)-40:]
	}
	name := "t_" + base + "_" + hex.EncodeToString(rnd[:])
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			tb.Errorf("postgrestest: drop schema %s: connect: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			tb.Errorf("postgrestest: drop schema %s: %v", name, err)
		}
	})
	return name
}
