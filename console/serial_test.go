package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The new-promotion form takes the numbered-series style: the live preview
// shows serial samples, the tails and the guess probability at a known
// serial, and names the tail length and the serial digits a refused count
// needs; the form creates the promotion (the random style's hidden inputs,
// sent along, are not part of it) and its page describes the series.
func TestNewPromotionSerial(t *testing.T) {
	s := newSite(t, true, true)
	base := "/console/preview?kind=generated&style=serial&charset=alnum&prefix=SPRING-&separator=-&checkChar=1&length=10&groupSize=4"
	_, frag := s.get(base + "&codeCount=100000&serialDigits=6&tailLength=5")
	if !strings.Contains(frag, `id="capacity-ok"`) || strings.Count(frag, "<li><code>SPRING-00000") != 5 ||
		!strings.Contains(frag, "1 in 28,629,151") || !strings.Contains(frag, `<dd id="tails">28,629,151</dd>`) {
		t.Errorf("serial preview = %s, want 5 serial samples, the tails and a fit", frag)
	}
	_, frag = s.get(base + "&codeCount=2000000&serialDigits=6&tailLength=5")
	if !strings.Contains(frag, `id="capacity-refusal"`) || !strings.Contains(frag, `<strong id="fewest-digits">7</strong>`) {
		t.Errorf("2,000,000 codes of 6 digits = %s, want the refusal naming 7 digits", frag)
	}
	_, frag = s.get(base + "&codeCount=1000&serialDigits=6&tailLength=4")
	if !strings.Contains(frag, `id="preview-error"`) || !strings.Contains(frag, "use a tailLength of at least 5") {
		t.Errorf("tail 4 preview = %s, want the format refusal naming tail length 5", frag)
	}

	form := url.Values{"kind": {"generated"}, "name": {"spring"}, "codeCount": {"3000"}, "style": {"serial"},
		"charset": {"alnum"}, "serialDigits": {"6"}, "tailLength": {"5"}, "prefix": {"SPRING-"}, "separator": {"-"},
		"checkChar": {"1"}, "length": {"10"}, "groupSize": {"4"}, "maxUsagePerCode": {"1"}, "perUserLimit": {"1"}}
	resp, body := s.post("/console/new", form, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("create = %d:\n%.2000s", resp.StatusCode, body)
	}
	_, page := s.get(resp.Header.Get("Location"))
	if !strings.Contains(page, "numbered series: 6-digit serial, tail of 5 alnum") || !strings.Contains(page, "at a known serial") {
		t.Errorf("promotion page does not describe the series:\n%.3000s", page)
	}
	form.Set("tailLength", "3")
	form.Set("nonce", "another")
	resp, body = s.post("/console/new", form, nil)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "use a tailLength of at least 5") {
		t.Errorf("tail 3 create = %d, body lacks the refusal:\n%.1500s", resp.StatusCode, body)
	}
}
