package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
)

type listBody struct {
	Items      []statusView `json:"items"`
	NextCursor string       `json:"nextCursor"`
}

func (e *env) list(query string) listBody {
	e.t.Helper()
	r := e.do(http.MethodGet, "/v1/promotions"+query, "", nil)
	if r.StatusCode != http.StatusOK {
		e.t.Fatalf("GET /v1/promotions%s = %d %s, want 200", query, r.StatusCode, r.body)
	}
	var b listBody
	decodeJSON(e.t, r.body, &b)
	return b
}

func TestListPromotionsPagesNewestFirst(t *testing.T) {
	e := newEnv(t, envConfig{Open: true}, nil)
	var want []string
	for i := range 5 {
		c := e.create(fmt.Sprintf(`{"name":"spring %d","codeCount":10,"format":{"charset":"numeric","length":12}}`, i))
		want = append([]string{c.ID}, want...)
	}
	v := e.create(`{"name":"Vanity Fair","code":"FAIRX2026"}`)

	var got []string
	q := "?limit=2&name=SPRING"
	for range 10 {
		b := e.list(q)
		for _, it := range b.Items {
			got = append(got, it.ID)
		}
		if b.NextCursor == "" {
			break
		}
		q = "?limit=2&name=SPRING&cursor=" + url.QueryEscape(b.NextCursor)
	}
	if !slices.Equal(got, want) {
		t.Errorf("paged ids = %v, want %v", got, want)
	}
	all := e.list("")
	if len(all.Items) != 6 || all.Items[0].ID != v.ID || all.NextCursor != "" {
		t.Errorf("unfiltered list = %+v, want 6 items, the vanity one first, no next cursor", all)
	}
	if all.Items[1].Summary == "" || all.Items[1].CodeCount != 10 || all.Items[1].Status != "pending" {
		t.Errorf("list item = %+v, want the GET /v1/promotions/{id} view", all.Items[1])
	}
	if b := e.list("?status=completed"); len(b.Items) != 1 || b.Items[0].ID != v.ID {
		t.Errorf("status=completed = %+v, want only the vanity promotion", b)
	}
	if b := e.list("?status=pending&name=nothing-like-this"); len(b.Items) != 0 {
		t.Errorf("no match = %+v, want no items", b)
	}
}

func TestListPromotionsRejectsBadQueries(t *testing.T) {
	e := newEnv(t, envConfig{Open: true}, nil)
	for _, tc := range []struct{ query, field string }{
		{"?status=done", "status"},
		{"?active=yes", "active"},
		{"?active=1", "active"},
		{"?limit=0", "limit"},
		{"?limit=501", "limit"},
		{"?limit=ten", "limit"},
		{"?cursor=garbage", "cursor"},
		{"?cursor=" + url.QueryEscape("cDE6LTU"), "cursor"}, // "p1:-5"
		{"?sort=name", "sort"},
		{"?name=" + url.QueryEscape("a\x00b"), "name"},
	} {
		r := e.do(http.MethodGet, "/v1/promotions"+tc.query, "", nil)
		wantProblem(t, r, http.StatusUnprocessableEntity, tc.field)
	}
}

func TestWrongMethodIs405WithAllow(t *testing.T) {
	e := newEnv(t, envConfig{Open: true}, nil)
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodDelete, "/v1/promotions", "GET, HEAD, POST"},
		{http.MethodPut, "/v1/promotions/1", "GET, HEAD, PATCH, DELETE"},
		{http.MethodPost, "/v1/promotions/1/codes", "GET, HEAD"},
	} {
		r := e.do(tc.method, tc.path, "", nil)
		wantProblem(t, r, http.StatusMethodNotAllowed)
		if got := r.Header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow = %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}
	r := e.do(http.MethodGet, "/v2/nothing", "", nil)
	wantProblem(t, r, http.StatusNotFound)
	if r.Header.Get("Allow") != "" {
		t.Errorf("404 carries Allow %q", r.Header.Get("Allow"))
	}
}

func TestListRequiresAdmin(t *testing.T) {
	e := newEnv(t, envConfig{AdminTokens: []string{"admin-token-0123456789"}, RedeemTokens: []string{"redeem-token-0123456789"}}, nil)
	wantProblem(t, e.do(http.MethodGet, "/v1/promotions", "", nil), http.StatusUnauthorized)
	e.token = "redeem-token-0123456789"
	wantProblem(t, e.do(http.MethodGet, "/v1/promotions", "", nil), http.StatusForbidden)
	e.token = "admin-token-0123456789"
	if b := e.list(""); len(b.Items) != 0 {
		t.Errorf("empty store lists %+v", b)
	}
}

// listedTotals is the part of a list item this test reads beyond statusView.
type listedTotals struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	Active        bool   `json:"active"`
	Redemptions   int64  `json:"redemptions"`
	CodesRedeemed int64  `json:"codesRedeemed"`
}

func (e *env) listTotals(query string) map[string]listedTotals {
	e.t.Helper()
	r := e.do(http.MethodGet, "/v1/promotions"+query, "", nil)
	if r.StatusCode != http.StatusOK {
		e.t.Fatalf("GET /v1/promotions%s = %d %s, want 200", query, r.StatusCode, r.body)
	}
	var b struct {
		Items []listedTotals `json:"items"`
	}
	decodeJSON(e.t, r.body, &b)
	out := map[string]listedTotals{}
	for _, it := range b.Items {
		out[it.ID] = it
	}
	return out
}

// The list's items carry the switch, the status GET /{id} answers (also for
// cancelled and deleted promotions) and the redemption totals once rolled
// up; the status and active filters select by them.
func TestListItemsCarryActiveStatusAndTotals(t *testing.T) {
	e := newEnv(t, envConfig{Open: true}, nil)
	ctx := context.Background()
	gen := `{"name":"%s","codeCount":10,"format":{"charset":"numeric","length":12}}`
	off := e.create(fmt.Sprintf(gen, "switched off"))
	cancelled := e.create(fmt.Sprintf(gen, "stopped"))
	deleted := e.create(fmt.Sprintf(gen, "gone"))
	v := e.create(`{"name":"Totals","code":"TOTALS2026","maxUsagePerCode":5,"perUserLimit":0}`)

	var ids []string
	for _, u := range []string{"u1", "u2", "u3"} {
		r := e.do(http.MethodPost, "/v1/codes/TOTALS2026/redemptions", `{"userId":"`+u+`"}`,
			http.Header{"Idempotency-Key": {"k-" + u}})
		if r.StatusCode != http.StatusCreated {
			t.Fatalf("redeem for %s = %d %s", u, r.StatusCode, r.body)
		}
		var red struct {
			ID string `json:"id"`
		}
		decodeJSON(t, r.body, &red)
		ids = append(ids, red.ID)
	}
	if r := e.do(http.MethodPost, "/v1/redemptions/"+ids[0]+"/rollback", `{"reason":"order cancelled"}`, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("rollback = %d %s", r.StatusCode, r.body)
	}
	if r := e.do(http.MethodPatch, "/v1/promotions/"+off.ID, `{"active":false}`, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("PATCH active=false = %d %s", r.StatusCode, r.body)
	}
	if r := e.do(http.MethodPost, "/v1/promotions/"+cancelled.ID+"/cancel", "", nil); r.StatusCode != http.StatusOK {
		t.Fatalf("cancel = %d %s", r.StatusCode, r.body)
	}
	if r := e.do(http.MethodDelete, "/v1/promotions/"+deleted.ID, "", nil); r.StatusCode/100 != 2 {
		t.Fatalf("DELETE = %d %s", r.StatusCode, r.body)
	}

	// Not rolled up yet: the totals are the last rollup's.
	if got := e.listTotals("")[v.ID]; got.Redemptions != 0 || got.CodesRedeemed != 0 {
		t.Errorf("before any rollup: %+v, want 0 redemptions", got)
	}
	if _, err := e.store.RollUp(ctx, 0); err != nil {
		t.Fatalf("RollUp: %v", err)
	}
	all := e.listTotals("")
	if got := all[v.ID]; got.Redemptions != 2 || got.CodesRedeemed != 1 || !got.Active || got.Status != "completed" {
		t.Errorf("vanity item = %+v, want 2 redemptions of 1 code, active, completed", got)
	}
	if st := e.statusTotals(v.ID); st != all[v.ID] {
		t.Errorf("GET /v1/promotions/%s = %+v, list item %+v", v.ID, st, all[v.ID])
	}
	for id, want := range map[string]struct {
		status string
		active bool
	}{off.ID: {"pending", false}, cancelled.ID: {"cancelled", true}, v.ID: {"completed", true}} {
		if got := all[id]; got.Status != want.status || got.Active != want.active {
			t.Errorf("item %s = %+v, want status %s, active %t", id, got, want.status, want.active)
		}
	}
	// The deletion runs in the background: deleting, then deleted; the list
	// says what GET /{id} says, and the filter agrees.
	gone := all[deleted.ID]
	if (gone.Status != "deleting" && gone.Status != "deleted") || gone.Active {
		t.Errorf("deleted promotion's item = %+v, want deleting or deleted, inactive", gone)
	}
	for id, it := range all {
		if st := e.statusTotals(id); st.Status != it.Status && id != deleted.ID {
			t.Errorf("promotion %s: list status %s, GET status %s", id, it.Status, st.Status)
		}
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"?active=false", []string{off.ID, deleted.ID}},
		{"?active=true", []string{v.ID, cancelled.ID}},
		{"?status=cancelled", []string{cancelled.ID}},
		{"?status=pending&active=false", []string{off.ID}},
		{"?status=completed&active=false", nil},
	} {
		got := e.listTotals(tc.query)
		if len(got) != len(tc.want) {
			t.Errorf("%s = %v, want %v", tc.query, got, tc.want)
		}
		for _, id := range tc.want {
			if _, ok := got[id]; !ok {
				t.Errorf("%s lacks %s: %v", tc.query, id, got)
			}
		}
	}
	st := e.statusTotals(deleted.ID).Status
	if got := e.listTotals("?status=" + st); len(got) != 1 || got[deleted.ID].ID == "" {
		t.Errorf("?status=%s = %v, want the deleted promotion", st, got)
	}
}

func (e *env) statusTotals(id string) listedTotals {
	e.t.Helper()
	r := e.do(http.MethodGet, "/v1/promotions/"+id, "", nil)
	if r.StatusCode != http.StatusOK {
		e.t.Fatalf("GET /v1/promotions/%s = %d %s", id, r.StatusCode, r.body)
	}
	var v listedTotals
	decodeJSON(e.t, r.body, &v)
	return v
}
