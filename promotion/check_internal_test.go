package promotion

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// A create request is checked completely: every field at fault is named in
// one refusal, before anything is written.
func TestCheckNamesEveryFieldAtFault(t *testing.T) {
	s, err := New(Config{Secret: []byte("promotion-test-secret-0123456789ab")}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	big := MaxUsageCeiling + 1
	for _, c := range []struct {
		name   string
		req    Request
		fields []string
	}{
		{"settings and count", Request{Name: " ", CodeCount: json.RawMessage(`"10"`), MaxUsagePerCode: &big,
			ExpiresAt: &past, Format: &promo.Format{Charset: "alnum", Length: 10}},
			[]string{"name", "maxUsagePerCode", "expiresAt", "codeCount"}},
		{"vanity with a count", Request{Name: "v", Code: new(string), CodeCount: json.RawMessage(`10`)}, []string{"code"}},
		{"generated without a format", Request{Name: "g", CodeCount: json.RawMessage(`10`)}, []string{"format"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.check(c.req)
			var pe *promo.Error
			if !errors.As(err, &pe) || pe.Code != promo.EInvalid {
				t.Fatalf("check = %v, want EInvalid", err)
			}
			var got []string
			for _, f := range pe.Fields {
				got = append(got, f.Field)
			}
			if !slices.Equal(got, c.fields) {
				t.Errorf("fields %v, want %v", got, c.fields)
			}
		})
	}
}
