package app

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// A client that sends half a request no longer holds a connection for
// good: http.readTimeout closes it.
func TestHTTPServerReadTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	go func() {
		done <- httpServer(ctx, []net.Listener{ln}, h, HTTPConfig{ReadTimeout: 500 * time.Millisecond, IdleTimeout: time.Second}, zaptest.NewLogger(t))
	}()
	defer func() {
		cancel()
		<-done
	}()

	for _, partial := range []string{
		"POST /v1/promotions HTTP/1.1\r\nHost: x\r\n",                                           // headers never end
		"POST /v1/promotions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"name\":\"slo", // body never ends
	} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := c.Write([]byte(partial)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Errorf("%q: the server still holds the connection after 5s", partial[:30])
				}
				break
			}
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("%q: closed after %s, want about the 500ms read timeout", partial[:30], took)
		}
		c.Close()
	}
}

// An unmigrated database is not ready, and the probe says what to do.
func TestSchemaCurrent(t *testing.T) {
	ctx := context.Background()
	st, err := OpenStore(ctx, DBConfig{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "p.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = schemaCurrent(ctx, st)
	if err == nil || !strings.Contains(err.Error(), "run promocodes migrate") {
		t.Fatalf("unmigrated: %v, want an error saying run promocodes migrate", err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := schemaCurrent(ctx, st); err != nil {
		t.Errorf("migrated: %v", err)
	}
}
