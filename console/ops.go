package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/shovel"
)

// The operations page an SRE keeps open: consumer lag per group and
// partition, what is parked and its replay (a dry run, then the confirmed
// copy of exactly what the dry run listed), the shovel's recent cycles
// summarised, and a topic browser (ops/topics). It reads the cluster with
// the Kafka client of the process it runs in (the embedded broker in dev,
// kafka.brokers in the api deployable).

// OpsClient is the Kafka client the operations pages read with
// (*kafka.Client).
type OpsClient interface {
	shovel.Client
	GroupLag(ctx context.Context, group string, topics ...string) ([]kafka.PartitionLag, error)
	DescribeGroup(ctx context.Context, group string) (kafka.Group, error)
	Latest(ctx context.Context, topic string, n int) ([]kafka.Message, error)
}

// clock is how the operations pages show times: the date once (in the
// page's "as of"), then the time of day; another day's times with their date.
type clock struct{ now time.Time }

func (c clock) At(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	t = t.UTC()
	if y, m, d := t.Date(); y == c.now.Year() && m == c.now.Month() && d == c.now.Day() {
		return t.Format("15:04:05")
	}
	return t.Format("Jan 2 15:04:05")
}

func (c clock) Now() string { return c.now.Format("2006-01-02 15:04:05 UTC") }

// roundDuration says a duration to the precision a person reads.
func roundDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return "<1 ms"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	}
	return d.Round(time.Second).String()
}

// ---- consumer lag ----

type lagGroup struct {
	Group   string
	Role    string
	State   string
	Members int
	Err     string
	Topics  []lagTopic
}

type lagTopic struct {
	Topic string
	Lag   int64
	Parts []lagPart
}

type lagPart struct {
	kafka.PartitionLag
	Owner string // the member holding it (client id and host), "" when none
}

// lags reads the generators' group on the batch and retry topics and the
// shovel's on the error topic.
func (c *Console) lags(ctx context.Context) []lagGroup {
	o := c.ops
	var out []lagGroup
	for _, g := range []struct {
		group, role string
		topics      []string
	}{
		{o.GeneratorGroup, "generators", []string{o.BatchesTopic, o.RetryTopic}},
		{o.ShovelGroup, "shovel", []string{o.ErrorTopic}},
	} {
		topics := slices.DeleteFunc(slices.Clone(g.topics), func(s string) bool { return s == "" })
		if g.group == "" || len(topics) == 0 {
			continue
		}
		lg := lagGroup{Group: g.group, Role: g.role}
		owner := map[string]string{}
		if d, err := o.Client.DescribeGroup(ctx, g.group); err == nil {
			lg.State, lg.Members = d.State, len(d.Members)
			for _, m := range d.Members {
				for t, ps := range m.Partitions {
					for _, p := range ps {
						owner[t+"/"+strconv.Itoa(p)] = strings.TrimSpace(m.ClientID + " " + m.ClientHost)
					}
				}
			}
		} else {
			lg.State = "unknown"
		}
		parts, err := o.Client.GroupLag(ctx, g.group, topics...)
		if err != nil {
			lg.Err = err.Error()
		}
		for _, p := range parts {
			if n := len(lg.Topics); n == 0 || lg.Topics[n-1].Topic != p.Topic {
				lg.Topics = append(lg.Topics, lagTopic{Topic: p.Topic})
			}
			t := &lg.Topics[len(lg.Topics)-1]
			t.Lag += p.Lag
			t.Parts = append(t.Parts, lagPart{PartitionLag: p, Owner: owner[p.Topic+"/"+strconv.Itoa(p.Partition)]})
		}
		out = append(out, lg)
	}
	return out
}

// ---- parked batches ----

// deadGroup is what is parked for one promotion and reason.
type deadGroup struct {
	PromotionID string
	Reason      string
	Events      int
	Codes       int64
	Batches     []int  // their batch numbers, ascending
	LastError   string // x-error of the newest
	LastFailed  string // x-failed-at of the newest
	Status      string // the promotion's status now
	Summary     string
}

func (c *Console) deadGroups(r *http.Request) ([]deadGroup, int, error) {
	if c.ops.Client == nil || c.ops.DeadTopic == "" {
		return nil, 0, errors.New("no Kafka client in this process")
	}
	const limit = 10_000
	entries, err := shovel.Inspect(r.Context(), c.ops.Client, c.ops.DeadTopic, shovel.Filter{Limit: limit})
	if err != nil {
		return nil, 0, err
	}
	idx := map[[2]string]*deadGroup{}
	var groups []*deadGroup
	for _, e := range entries {
		pid, codes := "(undecodable)", int64(0)
		if e.Event != nil {
			pid, codes = e.Event.PromotionID, e.Event.CodeCount
		}
		reason := e.DeadReason
		if reason == "" {
			reason = "(none)"
		}
		k := [2]string{pid, reason}
		g := idx[k]
		if g == nil {
			g = &deadGroup{PromotionID: pid, Reason: reason}
			idx[k] = g
			groups = append(groups, g)
		}
		g.Events++
		g.Codes += codes
		if e.Event != nil && !slices.Contains(g.Batches, e.Event.BatchNo) {
			g.Batches = append(g.Batches, e.Event.BatchNo)
		}
		if e.Error != "" {
			g.LastError, g.LastFailed = e.Error, e.FailedAt
		}
	}
	sort.Slice(groups, func(i, j int) bool {
		if groups[i].PromotionID != groups[j].PromotionID {
			return groups[i].PromotionID > groups[j].PromotionID
		}
		return groups[i].Reason < groups[j].Reason
	})
	out := make([]deadGroup, len(groups))
	api, ctx := c.apiFor(r)
	for i, g := range groups {
		slices.Sort(g.Batches)
		if _, err := promo.ParseID(g.PromotionID); err == nil {
			if p, err := api.GetPromotion(ctx, g.PromotionID); err == nil {
				g.Status, g.Summary = string(p.Status), p.Summary
			}
		}
		out[i] = *g
	}
	return out, len(entries), nil
}

// ---- the shovel ----

// shovelRow is one line of the shovel's summary: a cycle that did
// something (or failed), or a run of idle cycles in one line.
type shovelRow struct {
	From, To time.Time // To: the run's newest cycle (a single cycle: From == To)
	Idle     int       // idle cycles in the run; 0 for a busy cycle
	Stats    shovel.Stats
	Duration string
	Err      string
}

type shovelSummary struct {
	Cycles                        int
	Since                         time.Time
	Moved, Parked, Failed, Errors int
	Typical, Longest              string // durations, rounded
	Rows                          []shovelRow
}

// summarise turns the shovel's last cycles (newest first) into a summary
// whose idle runs take one line each.
func summarise(cycles []shovel.Cycle) shovelSummary {
	var s shovelSummary
	if len(cycles) == 0 {
		return s
	}
	s.Cycles, s.Since = len(cycles), cycles[len(cycles)-1].At
	durs := make([]time.Duration, 0, len(cycles))
	for _, c := range cycles {
		s.Moved += c.Stats.Moved
		s.Parked += c.Stats.Parked
		s.Failed += c.Stats.Failed
		durs = append(durs, c.Stats.Duration)
		idle := c.Err == "" && c.Stats.Moved == 0 && c.Stats.Parked == 0 && c.Stats.Failed == 0
		if c.Err != "" {
			s.Errors++
		}
		if n := len(s.Rows); idle && n > 0 && s.Rows[n-1].Idle > 0 {
			last := &s.Rows[n-1]
			last.Idle++
			last.From = c.At // newest first: the run reaches back
			continue
		}
		row := shovelRow{From: c.At, To: c.At, Stats: c.Stats, Duration: roundDuration(c.Stats.Duration), Err: c.Err}
		if idle {
			row.Idle = 1
		}
		s.Rows = append(s.Rows, row)
	}
	slices.Sort(durs)
	s.Typical, s.Longest = roundDuration(durs[len(durs)/2]), roundDuration(durs[len(durs)-1])
	return s
}

// topicActivity is what the topics say about the shovel wherever it runs:
// events waiting in the error topic for its group, and when it last moved
// an event to the retry topic and parked one.
type topicActivity struct {
	Waiting             int64
	LastRetry, LastDead time.Time
	Err                 string
}

func (c *Console) shovelActivity(ctx context.Context, lags []lagGroup) topicActivity {
	var a topicActivity
	for _, g := range lags {
		if g.Role == "shovel" {
			for _, t := range g.Topics {
				a.Waiting += t.Lag
			}
		}
	}
	newest := func(topic string) time.Time {
		if topic == "" {
			return time.Time{}
		}
		ms, err := c.ops.Client.Latest(ctx, topic, 1)
		if err != nil {
			a.Err = err.Error()
			return time.Time{}
		}
		if len(ms) == 0 {
			return time.Time{}
		}
		return ms[0].Time
	}
	a.LastRetry, a.LastDead = newest(c.ops.RetryTopic), newest(c.ops.DeadTopic)
	return a
}

// ---- the page ----

func (c *Console) opsPage(w http.ResponseWriter, r *http.Request) {
	c.renderOps(w, r, nil)
}

func (c *Console) renderOps(w http.ResponseWriter, r *http.Request, extra map[string]any) {
	data := map[string]any{"DeadTopic": c.ops.DeadTopic, "BatchesTopic": c.ops.BatchesTopic, "Clock": clock{now: time.Now().UTC()}}
	groups, n, err := c.deadGroups(r)
	if err != nil {
		data["DeadError"] = err.Error()
	}
	data["Groups"], data["DeadCount"] = groups, n
	if c.ops.Client != nil {
		lags := c.lags(r.Context())
		data["Lags"] = lags
		data["Activity"] = c.shovelActivity(r.Context(), lags)
	}
	if c.ops.ShovelHistory != nil {
		data["Shovel"] = summarise(c.ops.ShovelHistory.Last())
		data["HasHistory"] = true
	}
	for k, v := range extra {
		data[k] = v
	}
	c.render(w, r, "ops", data)
}

// promotionFilter reads an optional promotion id ("" for all); a value that
// is not an id answers a 422 page and false.
func (c *Console) promotionFilter(w http.ResponseWriter, r *http.Request, v string) (string, bool) {
	pid := strings.TrimSpace(v)
	if pid != "" {
		if _, err := promo.ParseID(pid); err != nil {
			c.fail(w, r, http.StatusUnprocessableEntity, fmt.Errorf("promotion %q is not a promotion id", pid))
			return "", false
		}
	}
	return pid, true
}

// formatMarks and parseMarks carry a dry run's high-water marks through its
// confirmation form ("0:12,1:40").
func formatMarks(m map[int]int64) string {
	parts := make([]string, 0, len(m))
	for p, o := range m {
		parts = append(parts, strconv.Itoa(p)+":"+strconv.FormatInt(o, 10))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func parseMarks(s string) (map[int]int64, error) {
	m := map[int]int64{}
	for _, kv := range strings.Split(s, ",") {
		p, o, ok := strings.Cut(kv, ":")
		pi, err1 := strconv.Atoi(p)
		oi, err2 := strconv.ParseInt(o, 10, 64)
		if !ok || err1 != nil || err2 != nil || pi < 0 || oi < 0 {
			return nil, fmt.Errorf("marks %q are not partition:offset pairs", s)
		}
		m[pi] = oi
	}
	return m, nil
}

// replay does what `promocodes topics replay --from <dead> --to <batches>
// [--promotion ID] [--reset-retries] [--dry-run]` does: a dry run first,
// then, confirmed, the copy of exactly what the dry run listed (its form
// carries the dead-letter topic's high-water marks at the dry run: an event
// parked since is not replayed unseen).
func (c *Console) replay(w http.ResponseWriter, r *http.Request) {
	if c.ops.Client == nil || c.ops.Publisher == nil {
		c.fail(w, r, http.StatusServiceUnavailable, errors.New("no Kafka client in this process"))
		return
	}
	pid, ok := c.promotionFilter(w, r, r.PostFormValue("promotion"))
	if !ok {
		return
	}
	confirm := r.PostFormValue("action") == "confirm"
	var (
		marks map[int]int64
		err   error
	)
	if confirm {
		marks, err = parseMarks(r.PostFormValue("until"))
	} else {
		marks, err = shovel.Marks(r.Context(), c.ops.Client, c.ops.DeadTopic)
	}
	if err != nil {
		c.fail(w, r, http.StatusUnprocessableEntity, fmt.Errorf("replay: %w", err))
		return
	}
	o := shovel.ReplayOptions{From: c.ops.DeadTopic, To: c.ops.BatchesTopic, Filter: shovel.Filter{PromotionID: pid, Until: marks},
		ResetRetries: r.PostFormValue("resetRetries") != "", DryRun: !confirm}
	entries, err := shovel.Replay(r.Context(), c.ops.Client, c.ops.Publisher, o, c.log.Named("replay"))
	if err != nil {
		c.renderOps(w, r, map[string]any{"ReplayError": err.Error()})
		return
	}
	if confirm {
		c.log.Info("console replay", zap.String("promotion_id", pid), zap.Int("events", len(entries)),
			zap.Bool("reset_retries", o.ResetRetries), zap.String("from", o.From), zap.String("to", o.To))
	}
	c.renderOps(w, r, map[string]any{"Replay": map[string]any{"Confirmed": confirm, "Entries": entries,
		"Promotion": pid, "ResetRetries": o.ResetRetries, "Until": formatMarks(marks)}})
}

// ---- the topic browser ----

// browseScan is how many of each partition's newest events a filtered
// browse reads.
const browseScan = 2000

// browsedEvent is one event as the topic browser lists it.
type browsedEvent struct {
	kafka.Message
	Summary string // what the value says, in a line
	eventLinks
}

// eventLinks are the records an event is about, for the browser's links:
// its promotion, its batch (a batch event), its code and user (a
// redemption event). Empty fields link nowhere.
type eventLinks struct {
	PromotionID  string
	BatchNo      int
	HasBatch     bool
	Code, UserID string
}

// linksOf reads the records m is about from its value, else its key.
func linksOf(m kafka.Message) eventLinks {
	if ev, err := promo.DecodeEvent(m.Value); err == nil {
		return eventLinks{PromotionID: ev.PromotionID, BatchNo: ev.BatchNo, HasBatch: true}
	}
	var l eventLinks
	var re promo.RedemptionEvent
	if json.Unmarshal(m.Value, &re) == nil && re.Type != "" {
		l.Code, l.UserID = re.Redemption.Code, re.Redemption.UserID
	}
	if id := promotionOf(m); id != "" {
		if _, err := promo.ParseID(id); err == nil {
			l.PromotionID = id
		}
	}
	return l
}

// KeyString is the key as text.
func (e browsedEvent) KeyString() string { return string(e.Key) }

// promotionOf says which promotion an event is about: the value's
// promotionId (batch and redemption events alike), else the key's leading
// "<id>" or "<id>/...".
func promotionOf(m kafka.Message) string {
	var v struct {
		PromotionID string `json:"promotionId"`
	}
	if json.Unmarshal(m.Value, &v) == nil && v.PromotionID != "" {
		return v.PromotionID
	}
	id, _, _ := strings.Cut(string(m.Key), "/")
	return id
}

// summary says what an event's value holds, in a line.
func summary(m kafka.Message) string {
	if ev, err := promo.DecodeEvent(m.Value); err == nil {
		return fmt.Sprintf("batch %d of promotion %s: %d codes from seq %d", ev.BatchNo, ev.PromotionID, ev.CodeCount, ev.SeqStart)
	}
	var re promo.RedemptionEvent
	if json.Unmarshal(m.Value, &re) == nil && re.Type != "" {
		return fmt.Sprintf("%s: code %s, user %s (promotion %s)", re.Type, re.Redemption.Code, re.Redemption.UserID, re.PromotionID)
	}
	s := string(m.Value)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// browseTopics are the topics the browser offers, by role.
func (c *Console) browseTopics() [][2]string {
	o := c.ops
	var out [][2]string
	for _, t := range [][2]string{{"batches", o.BatchesTopic}, {"retry", o.RetryTopic}, {"error", o.ErrorTopic},
		{"dead", o.DeadTopic}, {"redemptions", o.RedemptionsTopic}} {
		if t[1] != "" {
			out = append(out, t)
		}
	}
	return out
}

// topicsPage serves GET /console/ops/topics?topic=ROLE[&promotion=ID][&n=N]:
// the newest events of one of the system's topics with their headers.
func (c *Console) topicsPage(w http.ResponseWriter, r *http.Request) {
	if c.ops.Client == nil {
		c.fail(w, r, http.StatusServiceUnavailable, errors.New("no Kafka client in this process"))
		return
	}
	q := r.URL.Query()
	topics := c.browseTopics()
	role := q.Get("topic")
	if role == "" && len(topics) > 0 {
		role = topics[0][0]
	}
	name := ""
	for _, t := range topics {
		if t[0] == role {
			name = t[1]
		}
	}
	if name == "" {
		c.fail(w, r, http.StatusNotFound, fmt.Errorf("no topic %q here (one of batches, retry, error, dead, redemptions)", role))
		return
	}
	pid, ok := c.promotionFilter(w, r, q.Get("promotion"))
	if !ok {
		return
	}
	n := 50
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 500 {
			c.fail(w, r, http.StatusUnprocessableEntity, fmt.Errorf("n %q: a number of events from 1 to 500", s))
			return
		}
		n = v
	}
	scan := n
	if pid != "" {
		scan = max(n, browseScan)
	}
	data := map[string]any{"Topics": topics, "Role": role, "Topic": name, "Promotion": pid, "N": n, "Scan": int64(scan),
		"Clock": clock{now: time.Now().UTC()}}
	ms, err := c.ops.Client.Latest(r.Context(), name, scan)
	if err != nil {
		data["Error"] = err.Error()
	}
	var events []browsedEvent
	for _, m := range ms {
		if pid != "" && promotionOf(m) != pid {
			continue
		}
		events = append(events, browsedEvent{Message: m, Summary: summary(m), eventLinks: linksOf(m)})
		if len(events) == n {
			break
		}
	}
	data["Events"] = events
	c.render(w, r, "topics", data)
}
