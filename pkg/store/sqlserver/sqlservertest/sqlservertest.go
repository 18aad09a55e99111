// Package sqlservertest gives integration tests a SQL Server and isolated
// databases on it, so that tests of any package can run against SQL Server in
// parallel.
//
// The server is PROMOCODES_TEST_SQLSERVER_DSN when set (a sqlserver:// URL
// with a login that may CREATE DATABASE); otherwise one SQL Server container
// per test process (Image), started by testcontainers-go on first use and
// terminated when the last test using it ends. Without either, tests skip,
// saying how to run them.
//
// Isolation is by database, because SQL Server has no search_path: Database
// gives a test a database of its own, which its subtests may share. All
// functions are safe for concurrent use.
package sqlservertest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
	_ "github.com/microsoft/go-mssqldb" // the "sqlserver" driver
	"github.com/testcontainers/testcontainers-go"

	"github.com/promocodes/promocodes/pkg/store/internal/testserver"
	tcmssql "github.com/testcontainers/testcontainers-go/modules/mssql"
)

// EnvDSN names the environment variable with the DSN of a server to use
// instead of a container.
const EnvDSN = "PROMOCODES_TEST_SQLSERVER_DSN"

// Image is the container image used when EnvDSN is not set: 2022-CU18 or
// later (older images' TLS certificates are rejected by recent Go).
const Image = "mcr.microsoft.com/mssql/server:2022-CU18-ubuntu-22.04"

// containerPassword is the sa password of the container: 3 of the 4
// character classes, and nothing that needs escaping in a URL (the module
// puts it into the DSN as it is).
const containerPassword = "Promocodes-Test-2022"

var server = testserver.Server{Env: EnvDSN, What: "SQL Server",
	Hint: "run them where a Docker engine is reachable (the " + Image + " container is started for you), or set " +
		EnvDSN + "=sqlserver://sa:PASSWORD@HOST:1433?encrypt=disable (a login that may CREATE DATABASE)",
	Run: func(ctx context.Context) (testcontainers.Container, error) {
		return testserver.Started(tcmssql.Run(ctx, Image, tcmssql.WithAcceptEULA(), tcmssql.WithPassword(containerPassword)))
	},
	// "Recovery is complete" is logged a moment before logins succeed.
	DSNOptions: "encrypt=disable", Ready: waitForLogin}

// ServerDSN is the DSN of a SQL Server for a test, on its default database
// (see postgrestest.DSN: the same rules, EnvDSN or one container).
var ServerDSN = server.DSN

// Database creates a database for tb alone and returns its DSN; the database
// is dropped when tb ends (after the cleanups registered later, such as
// closing a store opened on it). It skips tb like ServerDSN.
func Database(tb testing.TB) string {
	tb.Helper()
	server := ServerDSN(tb)
	name := testserver.Name(tb, 60)
	if err := admin(server, "create database "+name, "CREATE DATABASE ["+name+"]"); err != nil {
		tb.Fatalf("sqlservertest: %v", err)
	}
	tb.Cleanup(func() { // disconnecting whoever is still on it
		if err := admin(server, "drop database "+name, "IF DB_ID(N'"+name+"') IS NOT NULL BEGIN "+
			"ALTER DATABASE ["+name+"] SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE ["+name+"]; END"); err != nil {
			tb.Errorf("sqlservertest: %v", err)
		}
	})
	dsn, err := WithDatabase(server, name)
	if err != nil {
		tb.Fatalf("sqlservertest: %v", err)
	}
	return dsn
}

// WithDatabase returns the sqlserver:// URL dsn with its database set to
// name.
func WithDatabase(dsn, name string) (string, error) {
	if !strings.HasPrefix(strings.ToLower(dsn), "sqlserver://") {
		return "", fmt.Errorf("%s must be a sqlserver:// URL (the key=value form is not supported here)", EnvDSN)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("%s is not a valid URL", EnvDSN) // the error would quote the password
	}
	q := u.Query()
	for k := range q {
		if strings.EqualFold(k, "database") || strings.EqualFold(k, "initial catalog") {
			q.Del(k)
		}
	}
	q.Set("database", name)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// admin runs query on server in a session of its own; what says what it does.
func admin(server, what, query string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := sql.Open("sqlserver", server)
	if err != nil {
		return errors.New("cannot parse the server DSN")
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, query); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// waitForLogin pings dsn until it answers or ctx ends.
func waitForLogin(ctx context.Context, dsn string) error {
	db, err := sql.Open("sqlserver", dsn)
	if err != nil {
		return errors.New("cannot parse the container DSN")
	}
	defer db.Close()
	var last error
	_, err = backoff.Retry(ctx, func() (struct{}, error) {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		last = db.PingContext(pctx)
		return struct{}{}, last
	}, backoff.WithBackOff(backoff.NewConstantBackOff(time.Second)), backoff.WithMaxElapsedTime(0))
	if err != nil {
		return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
	}
	return nil
}
