package console_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
)

// generate commits batch batchNo of promotion id with its real codes, as a
// generator does (the site runs none).
func (s *site) generate(id string, batchNo int) {
	s.t.Helper()
	ctx := context.Background()
	pid, err := promo.ParseID(id)
	if err != nil {
		s.t.Fatal(err)
	}
	st, err := s.store.GetPromotion(ctx, pid)
	if err != nil {
		s.t.Fatal(err)
	}
	bs, err := s.store.IncompleteBatches(ctx, pid)
	if err != nil {
		s.t.Fatal(err)
	}
	l, err := codes.NewLayout(*st.Format)
	if err != nil {
		s.t.Fatal(err)
	}
	e, err := codes.NewForCounter(l, st.CounterName, []byte(testSecret))
	if err != nil {
		s.t.Fatal(err)
	}
	for _, b := range bs {
		if b.BatchNo != batchNo {
			continue
		}
		n := int(b.CodeCount - b.Done)
		c := promo.Chunk{Batch: b.Ref(), From: b.Done, Count: n, Codes: e.AppendCodes(nil, b.SeqStart+uint64(b.Done), n),
			CodeLen: l.CodeLen(), CounterName: st.CounterName, Replace: e.AppendCode, ReplaceLimit: l.Space()}
		if _, err := s.store.CommitChunk(ctx, c); err != nil {
			s.t.Fatalf("commit batch %d of %s: %v", batchNo, id, err)
		}
		return
	}
	s.t.Fatalf("promotion %s has no incomplete batch %d", id, batchNo)
}

var (
	liveStatus   = regexp.MustCompile(`id="summary" data-part data-status="([a-z]+)"`)
	incomplete   = regexp.MustCompile(`<tr data-batch="(\d+)"`)
	batchesCount = regexp.MustCompile(`<dd id="batches">([^<]*)</dd>`)
)

// liveParts reads the promotion's live parts as the page's script does and
// returns what they say: status, summary line, batches line, the batches
// listed as not complete, and the export button.
func (s *site) liveParts(id string) (status, summary, batches string, listed []string, export string) {
	s.t.Helper()
	resp, body := s.get("/console/promotions/" + id + "/live")
	if resp.StatusCode != http.StatusOK || !isHTML(resp) {
		s.t.Fatalf("GET live parts = %d %s:\n%.500s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	for _, part := range []string{`id="head-status" data-part`, `id="deletion-part" data-part`, `id="summary" data-part`,
		`id="batches-card" data-part`} {
		if !strings.Contains(body, part) {
			s.t.Errorf("live parts lack %s", part)
		}
	}
	if m := liveStatus.FindStringSubmatch(body); m != nil {
		status = m[1]
	}
	if i := strings.Index(body, `<p id="summary-text">`); i >= 0 {
		summary = body[i+len(`<p id="summary-text">`):]
		summary = summary[:strings.Index(summary, "<")]
	}
	if m := batchesCount.FindStringSubmatch(body); m != nil {
		batches = m[1]
	}
	for _, m := range incomplete.FindAllStringSubmatch(body, -1) {
		listed = append(listed, m[1])
	}
	if i := strings.Index(body, `id="export"`); i >= 0 {
		export = body[i:]
		export = export[strings.Index(export, ">")+1 : strings.Index(export, "</a>")]
	}
	return
}

// The promotion page's live parts (status, summary with the bar, the
// incomplete batches, the export button) are rendered together from one
// read, so they agree at every step: during generation, at completion,
// after a top-up and at its completion. The page carries them with the
// address the script refreshes them from.
func TestLivePartsRefreshTogether(t *testing.T) {
	s := newSite(t, true, true)
	id := s.createPromotion(`{"name":"live","codeCount":3000,"format":{"charset":"alnum","length":10}}`)
	_, page := s.get("/console/promotions/" + id)
	if !strings.Contains(page, `id="live" data-live="/console/promotions/`+id+`/live"`) {
		t.Fatalf("the page does not name its live parts' address:\n%.2000s", page)
	}
	check := func(step, wantStatus, wantSummary, wantBatches string, wantListed []string, wantExport string) {
		t.Helper()
		st, sum, b, listed, exp := s.liveParts(id)
		if st != wantStatus || !strings.HasPrefix(sum, wantSummary) || b != wantBatches ||
			strings.Join(listed, ",") != strings.Join(wantListed, ",") || exp != wantExport {
			t.Errorf("%s: status %q, summary %q, batches %q, listed not complete %v, export %q;\n"+
				"want %q, %q…, %q, %v, %q", step, st, sum, b, listed, exp, wantStatus, wantSummary, wantBatches, wantListed, wantExport)
		}
	}
	const soFar, all = "Export the codes generated so far (CSV)", "Export codes (CSV)"
	check("created", "pending", "0 / 3,000 codes", "0 of 3 complete, 0 retrying, 0 parked", []string{"0", "1", "2"}, soFar)
	s.generate(id, 0)
	s.generate(id, 1)
	check("2 of 3 batches", "generating", "2,000 / 3,000 codes", "2 of 3 complete, 0 retrying, 0 parked", []string{"2"}, soFar)
	s.generate(id, 2)
	check("completed", "completed", "3,000 / 3,000 codes", "3 of 3 complete, 0 retrying, 0 parked", nil, all)
	if _, body := s.get("/console/promotions/" + id + "/live"); !strings.Contains(body, `id="batches-none"`) {
		t.Errorf("completed: the batches part does not say every batch is complete")
	}
	if resp, _ := s.act(id, "topups", url.Values{"codeCount": {"1000"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("top-up = %d", resp.StatusCode)
	}
	check("topped up", "generating", "3,000 / 4,000 codes", "3 of 4 complete, 0 retrying, 0 parked", []string{"3"}, soFar)
	s.generate(id, 3)
	check("top-up completed", "completed", "4,000 / 4,000 codes", "4 of 4 complete, 0 retrying, 0 parked", nil, all)
}
