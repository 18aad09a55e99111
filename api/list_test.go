package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/promocodes/promocodes/api"
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
	e := newEnv(t, api.Config{Open: true}, nil)
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
	e := newEnv(t, api.Config{Open: true}, nil)
	for _, tc := range []struct{ query, field string }{
		{"?status=done", "status"},
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
	e := newEnv(t, api.Config{Open: true}, nil)
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodDelete, "/v1/promotions", "GET, HEAD, POST"},
		{http.MethodPut, "/v1/promotions/1", "GET, HEAD"},
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
	e := newEnv(t, api.Config{AdminTokens: []string{"adm"}, RedeemTokens: []string{"red"}}, nil)
	wantProblem(t, e.do(http.MethodGet, "/v1/promotions", "", nil), http.StatusUnauthorized)
	e.token = "red"
	wantProblem(t, e.do(http.MethodGet, "/v1/promotions", "", nil), http.StatusForbidden)
	e.token = "adm"
	if b := e.list(""); len(b.Items) != 0 {
		t.Errorf("empty store lists %+v", b)
	}
}
