//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
)

// A promotion of serial codes on PostgreSQL through the real processes: the
// generators write it with binary COPY, and a vanity code that already holds
// serial 000005's code sends that chunk through the collision fallback,
// which replaces it with the next serial. Exactly n codes, each the engine's
// code of its serial, in serial order when sorted.
func TestProcessesSerialCodesOnPostgres(t *testing.T) {
	s := newStack(t)
	s.startBroker()
	s.startAPI()
	s.startGenerator("generator-1")
	s.startGenerator("generator-2")
	f := promo.Format{Style: promo.StyleSerial, Charset: codes.PresetAlnum, SerialDigits: 7, TailLength: 5,
		Prefix: "SPRING-", Separator: "-"}
	e, err := codes.New(f, []byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	l := e.Layout()
	squatter, _ := e.Code(4)
	if code, body := s.do("POST", "/v1/promotions", `{"name":"squatter","code":"`+squatter+`"}`); code != http.StatusAccepted && code != http.StatusCreated {
		t.Fatalf("vanity: %d %s", code, body)
	}
	const n = 120_000
	code, body := s.do("POST", "/v1/promotions", fmt.Sprintf(`{"name":"spring","codeCount":%d,"format":`+
		`{"style":"serial","charset":"alnum","serialDigits":7,"tailLength":5,"prefix":"SPRING-","separator":"-"}}`, n))
	if code != http.StatusAccepted {
		t.Fatalf("create: %d %s", code, body)
	}
	var created struct{ ID string }
	if err := json.Unmarshal(body, &created); err != nil {
		t.Fatal(err)
	}
	id := created.ID
	st := s.waitCompleted(id, 3*time.Minute)
	if st.GeneratedCount != n || st.Batches.Total != 3 {
		t.Fatalf("status %+v", st)
	}
	s.assertExact(id, n)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pid, _ := strconv.ParseInt(id, 10, 64)
	rows, err := conn.Query(ctx, `SELECT code FROM `+pgx.Identifier{s.schema}.Sanitize()+
		`.codes WHERE promotion_id = $1 ORDER BY code COLLATE "C"`, pid)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	want := uint64(1)
	i := 0
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		if want == 5 {
			want++ // the vanity code's serial, replaced by n+1
		}
		serial, ok := l.SerialOf(c)
		if !ok || serial != want {
			t.Fatalf("code %d in order is %s (serial %d), want serial %d", i, c, serial, want)
		}
		if seq, err := e.Decode(c); err != nil || seq != serial-1 {
			t.Fatalf("%s does not decode to its serial: %d, %v", c, seq, err)
		}
		want++
		i++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if i != n || want != n+2 {
		t.Fatalf("%d codes up to serial %d, want %d up to %d", i, want-1, n, n+1)
	}
	t.Logf("promotion %s: %d serial codes on PostgreSQL, serials 1-4 and 6-%d in order; the vanity %s kept serial 5's code",
		id, i, n+1, l.Display(squatter))
}
