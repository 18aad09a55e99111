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
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"

	"github.com/promocodes/promocodes/pkg/store/internal/testserver"
)

// EnvDSN names the environment variable with the DSN of a server to use
// instead of a container.
const EnvDSN = "PROMOCODES_TEST_POSTGRES_DSN"

// Image is the container image used when EnvDSN is not set.
const Image = "postgres:16-alpine"

var server = testserver.Server{Env: EnvDSN, What: "PostgreSQL",
	Hint: "set " + EnvDSN + "=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run them against a server",
	Run: func(ctx context.Context) (testcontainers.Container, error) {
		return testserver.Started(tcpostgres.Run(ctx, Image, tcpostgres.WithDatabase("test"),
			tcpostgres.WithUsername("postgres"), tcpostgres.WithPassword("postgres"), tcpostgres.BasicWaitStrategies()))
	},
	DSNOptions: "sslmode=disable"}

// DSN returns the DSN of a PostgreSQL server for tb: EnvDSN if set, else the
// shared container (started if need be). Without EnvDSN and without a
// working Docker engine it skips tb, saying so.
var DSN = server.DSN

// Schema returns a schema name unique to tb (derived from its name plus a
// random suffix) for the Schema field of a store's config, and drops the
// schema, with everything in it, when tb ends. It does not create the schema:
// the store does. It skips tb like DSN.
func Schema(tb testing.TB) string {
	tb.Helper()
	dsn := DSN(tb)
	name := testserver.Name(tb, 40)
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
