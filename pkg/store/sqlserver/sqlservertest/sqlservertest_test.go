package sqlservertest

import (
	"net/url"
	"testing"
)

func TestWithDatabase(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"sqlserver://sa:Pw-1@127.0.0.1:1433?encrypt=disable", "sqlserver://sa:Pw-1@127.0.0.1:1433?database=t_1&encrypt=disable"},
		{"sqlserver://sa:Pw-1@h:1433?Database=master&encrypt=disable", "sqlserver://sa:Pw-1@h:1433?database=t_1&encrypt=disable"},
		{"sqlserver://sa:p%40ss@h/inst?initial+catalog=x", "sqlserver://sa:p%40ss@h/inst?database=t_1"},
	} {
		got, err := WithDatabase(tc.in, "t_1")
		if err != nil {
			t.Fatalf("WithDatabase(%q): %v", tc.in, err)
		}
		g, _ := url.Parse(got)
		w, _ := url.Parse(tc.want)
		if g.String() != w.String() || g.Query().Encode() != w.Query().Encode() {
			t.Errorf("WithDatabase(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if _, err := WithDatabase("server=h;user id=sa", "t_1"); err == nil {
		t.Error("WithDatabase accepted a key=value DSN")
	}
}
