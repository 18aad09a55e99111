package app

import (
	"bufio"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
)

// TestDevInProcessSerialOnSQLite: a promotion of serial codes goes through
// the real pipeline (API, outbox, embedded broker, generator workers,
// SQLite) like any other: exactly n codes, each one the engine's code of its
// serial, and sorted they are the serials in order. A vanity code that
// already holds serial 000001's code is skipped and replaced by the next
// serial in the same transaction, as for any collision, so the count stays
// exact: the promotion has serials 2..n+1.
func TestDevInProcessSerialOnSQLite(t *testing.T) {
	url, _ := devSystem(t)
	const format = `{"style":"serial","charset":"alnum","serialDigits":6,"tailLength":5,"prefix":"SPRING-","separator":"-"}`
	f := promo.Format{Style: promo.StyleSerial, Charset: codes.PresetAlnum, SerialDigits: 6, TailLength: 5,
		Prefix: "SPRING-", Separator: "-"}
	e, err := codes.New(f, []byte(devTestSecret))
	if err != nil {
		t.Fatal(err)
	}
	l := e.Layout()
	first, _ := e.Code(0)
	resp, err := http.Post(url+"/v1/promotions", "application/json",
		strings.NewReader(`{"name":"squatter","code":"`+first+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusCreated {
		t.Fatalf("vanity %s: %d", first, resp.StatusCode)
	}

	const n = 25_000
	id := createFormatAndWait(t, url, format, n, 3*time.Minute)
	list := exportCodes(t, url, id)
	if len(list) != n {
		t.Fatalf("export has %d codes, want %d", len(list), n)
	}
	slices.Sort(list) // the display form: SPRING-000002-…; it sorts as the canonical form does
	for i, d := range list {
		c, err := l.Parse(d)
		if err != nil || l.Display(c) != d {
			t.Fatalf("exported %s: %v (display %s)", d, err, l.Display(c))
		}
		serial, ok := l.SerialOf(c)
		if want := uint64(i + 2); !ok || serial != want {
			t.Fatalf("code %d in order is %s (serial %d), want serial %d", i, c, serial, want)
		}
		if seq, err := e.Decode(d); err != nil || seq != serial-1 {
			t.Fatalf("%s does not decode to its serial: %d, %v", c, seq, err)
		}
	}
	t.Logf("promotion %s: %d serial codes %s .. %s, the vanity %s kept its own", id, len(list),
		list[0], list[n-1], l.Display(first))
}

// exportCodes streams the CSV export and returns its codes (display form).
func exportCodes(t *testing.T, url, id string) []string {
	t.Helper()
	resp, err := http.Get(url + "/v1/promotions/" + id + "/codes")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() || sc.Text() != "code" {
		t.Fatalf("export header %q", sc.Text())
	}
	var out []string
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
