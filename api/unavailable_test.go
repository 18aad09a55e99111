package api_test

import (
	"net/http"
	"testing"
)

// A database the API can no longer use (its pool closed, as at shutdown or
// when every connection is gone) answers 503 with Retry-After and a problem
// document on every kind of request, never 500. (Connections refused and
// reset by a database that goes away: TestAdversarialLostDatabase.)
func TestClosedDatabaseAnswers503(t *testing.T) {
	for _, backend := range []string{backendSQLite, backendPostgres} {
		t.Run(backend, func(t *testing.T) {
			e := newEnvOn(t, backend, envConfig{Open: true}, nil)
			p := e.create(`{"name":"v","code":"MEGADETH21","maxUsagePerCode":5}`)
			res := e.do(http.MethodPost, "/v1/codes/MEGADETH21/reservations", `{"userId":"r"}`, nil)
			var reservation struct{ ID string }
			decodeJSON(t, res.body, &reservation)
			e.closeStore()
			for _, req := range []struct{ method, path, body string }{
				{http.MethodGet, "/v1/promotions/" + p.ID, ""},
				{http.MethodGet, "/v1/promotions", ""},
				{http.MethodPost, "/v1/promotions", `{"name":"w","code":"OTHER21"}`},
				{http.MethodGet, "/v1/codes/MEGADETH21?userId=u", ""},
				{http.MethodPost, "/v1/codes/MEGADETH21/redemptions", `{"userId":"u","orderId":"o"}`},
				{http.MethodPost, "/v1/codes/MEGADETH21/reservations", `{"userId":"u"}`},
				{http.MethodPost, "/v1/reservations/" + reservation.ID + "/confirm", `{"orderId":"o"}`},
				{http.MethodPatch, "/v1/promotions/" + p.ID, `{"active":false}`},
				{http.MethodGet, "/v1/promotions/" + p.ID + "/codes", ""},
			} {
				r := e.do(req.method, req.path, req.body, nil)
				wantProblem(t, r, http.StatusServiceUnavailable)
				if r.Header.Get("Retry-After") == "" {
					t.Errorf("%s %s: 503 without Retry-After", req.method, req.path)
				}
			}
		})
	}
}
