package promo

import (
	"encoding/json"
	"testing"
)

func TestAmount(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Amount
		out  string
	}{
		{"49.9", 499000, "49.90"}, {"0", 0, "0.00"}, {"12.5050", 125050, "12.505"}, {"-3", -30000, "-3.00"},
		{"99999999999999.9999", 999999999999999999, "99999999999999.9999"},
	} {
		a, err := ParseAmount(tc.in)
		if err != nil || a != tc.want || a.String() != tc.out {
			t.Errorf("ParseAmount(%q) = %d (%s), %v; want %d (%s)", tc.in, a, a, err, tc.want, tc.out)
		}
	}
	for _, bad := range []string{"", "1.", ".5", "1.23456", "1e3", "abc", "1,5", "1000000000000000"} {
		if _, err := ParseAmount(bad); err == nil {
			t.Errorf("ParseAmount(%q) accepted", bad)
		}
	}
	var o Order
	if err := json.Unmarshal([]byte(`{"amount":49.90,"currency":"EUR","discount":"5"}`), &o); err != nil ||
		o.Amount != 499000 || *o.Discount != 50000 {
		t.Errorf("order from JSON: %+v, %v", o, err)
	}
	if b, _ := json.Marshal(o); string(b) != `{"amount":"49.90","currency":"EUR","discount":"5.00"}` {
		t.Errorf("order to JSON: %s", b)
	}
}

func TestEligibilityCheck(t *testing.T) {
	yes, no := true, false
	e := Eligibility{Segments: []string{"vip"}, Countries: []string{"DE"}, FirstOrderOnly: true,
		MinOrderAmount: &Money{Amount: 100000, Currency: "EUR"}}.Normalize()
	ok := Shopper{Segments: []string{"vip"}, Country: "de", FirstOrder: &yes, Order: &Order{Amount: 100000, Currency: "eur"}}
	for _, tc := range []struct {
		edit func(*Shopper)
		want string
	}{
		{func(*Shopper) {}, ""},
		{func(s *Shopper) { s.Segments = []string{"VIP"} }, RuleSegments}, // segments are case-sensitive
		{func(s *Shopper) { s.Country = "" }, RuleCountries},
		{func(s *Shopper) { s.FirstOrder = &no }, RuleFirstOrderOnly},
		{func(s *Shopper) { s.FirstOrder, s.Order.FirstOrder = nil, &yes }, ""}, // order.firstOrder counts
		{func(s *Shopper) { s.Order.Amount = 99999 }, RuleMinOrderAmount},
	} {
		s := ok
		o := *ok.Order
		s.Order = &o
		tc.edit(&s)
		if got := e.Check(&s); got != tc.want {
			t.Errorf("%+v: rule %q, want %q", s, got, tc.want)
		}
	}
	if (*Eligibility)(nil).Check(nil) != "" || e.Check(nil) != RuleSegments {
		t.Error("nil rules admit anyone; rules refuse a request that says nothing")
	}
	if errs := (Eligibility{Countries: []string{"DEU"}, MinOrderAmount: &Money{Currency: "E"}}).Validate("eligibility"); len(errs) != 3 {
		t.Errorf("Validate: %v, want 3 errors (country, amount, currency)", errs)
	}
	if r, rule := SplitRefused(Refused(ReasonNotEligible, RuleCountries)); r != ReasonNotEligible || rule != RuleCountries {
		t.Errorf("SplitRefused: %q %q", r, rule)
	}
}
