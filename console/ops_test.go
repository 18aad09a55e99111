package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/promocodes/promocodes/console"
	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/kafka/kafkatest"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/shovel"
)

// opsRig is a console whose operations pages read an embedded broker with
// the system's five topics and two consumer groups.
type opsRig struct {
	*site
	ops    console.Ops
	client *kafka.Client
	prod   *kafka.Producer
	hist   *shovel.History
}

func newOpsRig(t *testing.T) *opsRig {
	t.Helper()
	cfg := kafka.Config{Brokers: kafkatest.Broker(t), ClientID: "console-ops-test", Partitions: 2}
	ops := console.Ops{BatchesTopic: kafkatest.Name(t, "batches"), RetryTopic: kafkatest.Name(t, "retry"),
		ErrorTopic: kafkatest.Name(t, "error"), DeadTopic: kafkatest.Name(t, "dead"),
		RedemptionsTopic: kafkatest.Name(t, "redemptions"), GeneratorGroup: kafkatest.Name(t, "gen"),
		ShovelGroup: kafkatest.Name(t, "shovel"), ShovelHistory: shovel.NewHistory(20)}
	ctx := context.Background()
	if err := kafka.EnsureTopics(ctx, cfg, ops.BatchesTopic, ops.RetryTopic, ops.ErrorTopic, ops.DeadTopic, ops.RedemptionsTopic); err != nil {
		t.Fatal(err)
	}
	client := kafka.NewClient(cfg)
	t.Cleanup(func() { _ = client.Close() })
	prod := kafka.NewProducer(cfg)
	t.Cleanup(func() { _ = prod.Close() })
	ops.Client, ops.Publisher = client, prod
	return &opsRig{site: newSiteOps(t, true, true, nil, ops), ops: ops, client: client, prod: prod, hist: ops.ShovelHistory}
}

func (r *opsRig) publish(msgs ...kafka.Message) {
	r.t.Helper()
	if err := r.prod.Publish(context.Background(), msgs...); err != nil {
		r.t.Fatal(err)
	}
}

func (r *opsRig) park(promotionID string, batch int) {
	r.t.Helper()
	m := kafka.EventMessage(r.ops.DeadTopic, promo.Event{V: 1, PromotionID: promotionID, BatchNo: batch, CodeCount: 1000})
	m.SetHeader(promo.HeaderRetryCount, "5")
	m.SetHeader(promo.HeaderError, "connection refused (database down)")
	m.SetHeader(promo.HeaderDeadReason, "max retries (5) reached")
	r.publish(m)
}

var lagCell = regexp.MustCompile(`data-topic="([^"]+)" data-partition="(\d+)" data-lag="(\d+)"`)

// lagOf sums the lag cells of a topic on the page.
func lagOf(page, topic string) (lag int64, partitions int) {
	for _, m := range lagCell.FindAllStringSubmatch(page, -1) {
		if m[1] == topic {
			var n int64
			fmt.Sscan(m[3], &n)
			lag += n
			partitions++
		}
	}
	return lag, partitions
}

// The operations page: lag per group and partition (committed against end
// offsets), parked batches with their reasons, the shovel from the topics
// and its cycles summarised (idle runs on one line).
func TestOpsPageLagParkedAndShovel(t *testing.T) {
	r := newOpsRig(t)
	ctx := context.Background()
	for b := range 6 {
		r.publish(kafka.EventMessage(r.ops.BatchesTopic, promo.Event{V: 1, PromotionID: "41", BatchNo: b, CodeCount: 50}))
	}
	for b := range 3 {
		r.publish(kafka.EventMessage(r.ops.ErrorTopic, promo.Event{V: 1, PromotionID: "42", BatchNo: b, CodeCount: 50}))
	}
	// The generators have done everything on partition 0 of the batch topic.
	_, high, err := r.client.Offsets(ctx, r.ops.BatchesTopic)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.client.CommitOffsets(ctx, r.ops.GeneratorGroup, r.ops.BatchesTopic, map[int]int64{0: high[0]}); err != nil {
		t.Fatal(err)
	}
	r.park("43", 2)
	r.park("43", 0)
	now := time.Now().UTC()
	for _, c := range []shovel.Cycle{
		{At: now.Add(-70 * time.Second), Stats: shovel.Stats{Moved: 2, Duration: 41*time.Millisecond + 300*time.Microsecond}},
		{At: now.Add(-60 * time.Second), Stats: shovel.Stats{Duration: 3 * time.Millisecond}},
		{At: now.Add(-50 * time.Second), Stats: shovel.Stats{Duration: 2 * time.Millisecond}},
		{At: now.Add(-40 * time.Second), Stats: shovel.Stats{Duration: 2 * time.Millisecond}},
		{At: now.Add(-30 * time.Second), Err: "read offsets of error: broker down", Stats: shovel.Stats{Duration: 1500 * time.Millisecond}},
		{At: now.Add(-20 * time.Second), Stats: shovel.Stats{Duration: time.Millisecond}},
		{At: now.Add(-10 * time.Second), Stats: shovel.Stats{Duration: time.Millisecond}},
	} {
		r.hist.Add(c)
	}

	resp, page := r.get("/console/ops")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ops = %d:\n%.2000s", resp.StatusCode, page)
	}
	if lag, parts := lagOf(page, r.ops.BatchesTopic); parts != 2 || lag != 6-high[0] {
		t.Errorf("batches lag %d over %d partitions, want %d over 2 (partition 0 committed)", lag, parts, 6-high[0])
	}
	if lag, parts := lagOf(page, r.ops.RetryTopic); parts != 2 || lag != 0 {
		t.Errorf("retry lag %d over %d partitions, want 0 over 2", lag, parts)
	}
	if lag, _ := lagOf(page, r.ops.ErrorTopic); lag != 3 {
		t.Errorf("error lag (the shovel's) %d, want 3", lag)
	}
	if !strings.Contains(page, `id="shovel-waiting">3 events`) {
		t.Error("the shovel section does not say 3 events wait in the error topic")
	}
	dead := section(page, "parked")
	for _, want := range []string{"43", "max retries (5) reached", "0, 2", "2,000", "connection refused (database down)"} {
		if !strings.Contains(dead, want) {
			t.Errorf("parked batches lack %q:\n%s", want, dead)
		}
	}
	cycles := section(page, "shovel")
	for _, want := range []string{"7 cycles since", "2 moved, 0 parked, 0 failed", "1 with an error", "2 idle cycles: nothing to move",
		"3 idle cycles: nothing to move", "41 ms", "1.5 s", "broker down"} {
		if !strings.Contains(cycles, want) {
			t.Errorf("shovel summary lacks %q:\n%s", want, cycles)
		}
	}
	if n := strings.Count(cycles, "<tr"); n != 1+4 { // header, busy, idle x3, error, idle x2
		t.Errorf("shovel table has %d rows, want 5 (header, 2 idle runs, 1 error, 1 busy):\n%s", n, cycles)
	}
	// Times: today's as time of day only; the date once, in the heading.
	if strings.Count(page, now.Format("2006-01-02")) != 1 {
		t.Errorf("today's date appears %d times, want once (the page's \"as of\")", strings.Count(page, now.Format("2006-01-02")))
	}
}

// section is the HTML of the page's <section id=id>.
func section(page, id string) string {
	i := strings.Index(page, `<section class="card" id="`+id+`">`)
	if i < 0 {
		return ""
	}
	j := strings.Index(page[i:], "</section>")
	return page[i : i+j]
}

// The topic browser: the newest events of a topic with their headers,
// filtered by promotion; only the system's topics.
func TestTopicBrowser(t *testing.T) {
	r := newOpsRig(t)
	r.park("7", 1)
	r.park("8", 0)
	r.park("7", 2)
	ev, err := promo.NewRedemptionEvent(promo.EventRedeemed, "e-1", time.Now(), promo.Redemption{ID: "r-1", PromotionID: 7,
		Code: "SPRING-K7QX", UserID: "alice"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.publish(kafka.Message{Topic: r.ops.RedemptionsTopic, Key: []byte("7"), Value: ev})

	_, page := r.get("/console/ops/topics?topic=dead&promotion=7")
	rows := regexp.MustCompile(`<tr data-key="([^"]*)">`).FindAllStringSubmatch(page, -1)
	if len(rows) != 2 || rows[0][1] != "7/2" || rows[1][1] != "7/1" {
		t.Errorf("dead topic filtered to promotion 7: rows %v, want 7/2 then 7/1 (newest first):\n%.3000s", rows, page)
	}
	for _, want := range []string{"x-dead-reason=max retries (5) reached", "x-retry-count=5", "batch 2 of promotion 7: 1000 codes"} {
		if !strings.Contains(page, want) {
			t.Errorf("dead topic page lacks %q", want)
		}
	}
	_, page = r.get("/console/ops/topics?topic=redemptions&promotion=7")
	if !strings.Contains(page, "redemption.created: code SPRING-K7QX, user alice (promotion 7)") {
		t.Errorf("redemptions topic does not show the event:\n%.3000s", page)
	}
	if _, page = r.get("/console/ops/topics?topic=redemptions&promotion=8"); strings.Contains(page, "SPRING-K7QX") {
		t.Error("promotion 8's filter shows promotion 7's redemption")
	}
	for q, want := range map[string]int{"topic=__consumer_offsets": 404, "topic=dead&promotion=x": 422, "topic=dead&n=0": 422,
		"topic=dead&n=501": 422} {
		if resp, _ := r.get("/console/ops/topics?" + q); resp.StatusCode != want || !isHTML(resp) {
			t.Errorf("topics?%s = %d, want a %d page", q, resp.StatusCode, want)
		}
	}
}

// Replay from the page: the confirmation moves exactly what the dry run
// listed, not an event parked in between.
func TestOpsReplayConfirmsWhatTheDryRunListed(t *testing.T) {
	r := newOpsRig(t)
	r.park("9", 0)
	r.park("9", 1)
	same := http.Header{"Origin": {r.srv.URL}, "Sec-Fetch-Site": {"same-origin"}}
	resp, page := r.post("/console/ops/replay", url.Values{"promotion": {"9"}, "resetRetries": {"1"}, "action": {"dryrun"}}, same)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Dry run: 2 events would be replayed") {
		t.Fatalf("dry run = %d:\n%.2000s", resp.StatusCode, page)
	}
	until := regexp.MustCompile(`name="until" value="([^"]*)"`).FindStringSubmatch(page)
	if until == nil {
		t.Fatalf("the confirmation form carries no marks:\n%.2000s", page)
	}
	r.park("9", 2) // parked after the dry run
	resp, page = r.post("/console/ops/replay", url.Values{"promotion": {"9"}, "resetRetries": {"1"}, "action": {"confirm"},
		"until": {until[1]}}, same)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Replayed 2 events") {
		t.Fatalf("confirm = %d:\n%.2000s", resp.StatusCode, page)
	}
	ms, err := r.client.Latest(context.Background(), r.ops.BatchesTopic, 10)
	if err != nil || len(ms) != 2 {
		t.Fatalf("batches topic holds %d events (%v), want the dry run's 2", len(ms), err)
	}
	for _, m := range ms {
		if string(m.Key) == "9/2" {
			t.Error("the event parked after the dry run was replayed")
		}
		if _, ok := m.Header(promo.HeaderRetryCount); ok {
			t.Error("retries not reset")
		}
	}
	if resp, _ := r.post("/console/ops/replay", url.Values{"action": {"confirm"}, "until": {"0:x"}}, same); resp.StatusCode != 422 {
		t.Errorf("confirm with bad marks = %d, want 422", resp.StatusCode)
	}
}

// The topic browser links each event to its records: the promotion, the
// batch on the promotion's page, and a redemption event's code and user.
// A promotion's page links each incomplete batch to its events in the topic
// browser (the dead-letter topic for a parked one), and its parked note to
// the parked events.
func TestBatchEventsLinkBothWays(t *testing.T) {
	r := newOpsRig(t)
	r.park("7", 2)
	ev, err := promo.NewRedemptionEvent(promo.EventRedeemed, "e-1", time.Now(), promo.Redemption{ID: "r-1", PromotionID: 7,
		Code: "SPRING-K7QX", UserID: "alice"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.publish(kafka.Message{Topic: r.ops.RedemptionsTopic, Key: []byte("7"), Value: ev})
	_, page := r.get("/console/ops/topics?topic=dead&promotion=7")
	for _, want := range []string{`href="/console/promotions/7"`, `href="/console/promotions/7#batch-2"`} {
		if !strings.Contains(page, want) {
			t.Errorf("dead topic's event of batch 7/2 has no link %s", want)
		}
	}
	_, page = r.get("/console/ops/topics?topic=redemptions&promotion=7")
	for _, want := range []string{`href="/console/promotions/7"`, `href="/console/codes/SPRING-K7QX"`, `href="/console/users/alice"`} {
		if !strings.Contains(page, want) {
			t.Errorf("redemption event has no link %s", want)
		}
	}

	id := r.createPromotion(`{"name":"linked","codeCount":3000,"format":{"charset":"alnum","length":10}}`)
	pid, _ := promo.ParseID(id)
	bs, err := r.store.IncompleteBatches(context.Background(), pid)
	if err != nil || len(bs) != 3 {
		t.Fatalf("batches of %s: %v %v", id, bs, err)
	}
	if err := r.store.SetBatchState(context.Background(), bs[1].Ref(), promo.BatchParked, "database down"); err != nil {
		t.Fatal(err)
	}
	_, page = r.get("/console/promotions/" + id)
	for _, want := range []string{
		`href="/console/ops/topics?topic=batches&amp;promotion=` + id + `"`, // a pending batch: the batches topic
		`href="/console/ops/topics?topic=dead&amp;promotion=` + id + `"`,    // the parked one, and the parked note
	} {
		if !strings.Contains(page, want) {
			t.Errorf("promotion page lacks the link %s:\n%.4000s", want, page[strings.Index(page, `id="batches-card"`):])
		}
	}
}
