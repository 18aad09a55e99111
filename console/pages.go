package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/shovel"
)

var funcs = template.FuncMap{
	// off: the API reports the flag and it is false.
	"off":   func(b *bool) bool { return b != nil && !*b },
	"comma": func(n int64) string { return humanize.Comma(n) },
	"pct": func(a, b int64) string {
		if b <= 0 {
			return "0"
		}
		return strconv.FormatFloat(math.Min(100, 100*float64(a)/float64(b)), 'f', 1, 64)
	},
	"when": func(v any) string {
		switch t := v.(type) {
		case time.Time:
			return t.UTC().Format("2006-01-02 15:04 UTC")
		case *time.Time:
			if t != nil {
				return t.UTC().Format("2006-01-02 15:04 UTC")
			}
		}
		return ""
	},
}

func (c *Console) parseTemplates() error {
	c.pages = map[string]*template.Template{}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	base := template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html"))
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" || name == "partials" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return fmt.Errorf("console template %s: %w", n, err)
		}
		c.pages[name] = t
	}
	return nil
}

// render executes page with data plus what every page shows.
func (c *Console) render(w http.ResponseWriter, r *http.Request, page string, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	data["Version"] = c.cfg.Version
	data["Open"] = c.cfg.Open
	if s, ok := r.Context().Value(sessionKey{}).(*session); ok {
		data["CSRF"] = s.csrf
		data["SignedIn"] = s.token != ""
		data["Flash"] = c.takeFlash(s)
	}
	data["Page"] = page
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := c.pages[page].ExecuteTemplate(w, "layout", data); err != nil {
		c.log.Error("render console page", zap.String("page", page), zap.Error(err))
	}
}

func (c *Console) renderFragment(w http.ResponseWriter, page, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := c.pages[page].ExecuteTemplate(w, name, data); err != nil {
		c.log.Error("render console fragment", zap.String("fragment", name), zap.Error(err))
	}
}

func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	w.WriteHeader(status)
	c.render(w, r, "error", map[string]any{"Status": status, "Error": err.Error()})
}

// ---- promotions list ----

// promotionView is a promotion as the API returns it.
type promotionView struct {
	ID              string        `json:"id"`
	Name            string        `json:"name"`
	Kind            string        `json:"kind"`
	Status          string        `json:"status"`
	CodeCount       int64         `json:"codeCount"`
	GeneratedCount  int64         `json:"generatedCount"`
	MissingCount    int64         `json:"missingCount"`
	BatchCounts     batchCounts   `json:"batches"`
	MaxUsagePerCode int           `json:"maxUsagePerCode"`
	PerUserLimit    int           `json:"perUserLimit"`
	CreatedAt       time.Time     `json:"createdAt"`
	StartsAt        *time.Time    `json:"startsAt"`
	ExpiresAt       *time.Time    `json:"expiresAt"`
	Summary         string        `json:"summary"`
	Format          *promo.Format `json:"format"`
	Code            string        `json:"code"`
	// Active is nil only from an API that does not report it (before 00008).
	Active        *bool         `json:"active"`
	Redemptions   int64         `json:"redemptions"`   // as of the last rollup
	CodesRedeemed int64         `json:"codesRedeemed"` // as of the last rollup
	TopUps        []promo.TopUp `json:"topups"`
	Deletion      *deletion     `json:"deletion"`
}

type batchCounts struct {
	Total     int `json:"total"`
	Completed int `json:"completed"`
	Retrying  int `json:"retrying"`
	Parked    int `json:"parked"`
}

type listData struct {
	Items      []promotionView
	NextCursor string
	Query      url.Values
	Status     string
	Name       string
	Active     string // "", "true" or "false"
}

func (c *Console) fetchList(r *http.Request) (listData, error) {
	q := url.Values{}
	in := r.URL.Query()
	for _, k := range []string{"status", "name", "active", "cursor"} {
		if v := strings.TrimSpace(in.Get(k)); v != "" {
			q.Set(k, v)
		}
	}
	q.Set("limit", "50")
	res := c.callAPI(r, http.MethodGet, "/v1/promotions?"+q.Encode(), nil, nil)
	var d listData
	if err := decodeAPI(res, http.StatusOK, &struct {
		Items      *[]promotionView `json:"items"`
		NextCursor *string          `json:"nextCursor"`
	}{&d.Items, &d.NextCursor}); err != nil {
		return d, err
	}
	d.Query, d.Status, d.Name, d.Active = q, q.Get("status"), q.Get("name"), q.Get("active")
	return d, nil
}

func decodeAPI(res apiResponse, want int, v any) error {
	if res.status != want {
		var p problem
		if json.Unmarshal(res.body, &p) == nil && p.Status != 0 {
			return p
		}
		return fmt.Errorf("the API answered %d", res.status)
	}
	return json.Unmarshal(res.body, v)
}

func (c *Console) listPage(w http.ResponseWriter, r *http.Request) {
	d, err := c.fetchList(r)
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	c.render(w, r, "list", map[string]any{"L": d, "Statuses": listStatuses})
}

// listStatuses are the statuses the API's list filters by (every status).
var listStatuses = []promo.Status{promo.StatusPending, promo.StatusGenerating, promo.StatusCompleted, promo.StatusFailed,
	promo.StatusCancelled, promo.StatusDeleting, promo.StatusDeleted}

func (c *Console) listRows(w http.ResponseWriter, r *http.Request) {
	d, err := c.fetchList(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	c.renderFragment(w, "list", "rows", d)
}

// ---- one promotion ----

func (c *Console) loadPromotion(r *http.Request) (promotionView, apiResponse, error) {
	id := r.PathValue("id")
	if _, err := promo.ParseID(id); err != nil {
		return promotionView{}, apiResponse{status: http.StatusNotFound}, err
	}
	res := c.callAPI(r, http.MethodGet, "/v1/promotions/"+id, nil, nil)
	var p promotionView
	err := decodeAPI(res, http.StatusOK, &p)
	return p, res, err
}

func (c *Console) promotionPage(w http.ResponseWriter, r *http.Request) {
	c.renderPromotion(w, r, http.StatusOK, nil)
}

// renderPromotion renders a promotion's page under status, with extra (an
// action's error and its form values) merged in.
func (c *Console) renderPromotion(w http.ResponseWriter, r *http.Request, status int, extra map[string]any) {
	p, res, err := c.loadPromotion(r)
	if err != nil {
		status := res.status
		if status < 400 {
			status = http.StatusBadGateway
		}
		c.fail(w, r, status, err)
		return
	}
	data := map[string]any{"P": p, "L": lifecycleOf(p), "Nonce": randomToken(),
		"ActionError": map[string]string{}, "Form": map[string]string{}}
	if c.batches != nil {
		id, _ := promo.ParseID(p.ID)
		bs, err := c.batches.IncompleteBatches(r.Context(), id)
		if err != nil {
			data["BatchesError"] = err.Error()
		}
		data["Batches"] = bs
	}
	if p.Format != nil {
		if l, err := codes.NewLayout(*p.Format); err == nil {
			data["Space"] = humanize.Comma(int64(min(l.Space(), math.MaxInt64)))
			data["Guess"] = fmt.Sprintf("%.3g", l.GuessProbability(uint64(p.CodeCount)))
		}
	}
	if entries, err := c.audit(r, p.ID); err == nil {
		data["Audit"] = entries[:min(len(entries), 10)]
	} else {
		data["AuditError"] = err.Error()
	}
	if p.Active != nil {
		data["Active"] = *p.Active
	}
	bucket := "hour"
	if r.URL.Query().Get("bucket") == "day" {
		bucket = "day"
	}
	var st statsView
	if err := decodeAPI(c.callAPI(r, http.MethodGet, "/v1/promotions/"+p.ID+"/stats?bucket="+bucket, nil, nil),
		http.StatusOK, &st); err != nil {
		data["StatsError"] = err.Error()
	} else {
		data["Stats"], data["Chart"] = st, barChart(st)
		data["Rate"] = strconv.FormatFloat(100*st.RedemptionRate, 'f', 2, 64)
	}
	data["Bucket"] = bucket
	for k, v := range extra {
		if v != nil {
			data[k] = v
		}
	}
	if status != http.StatusOK {
		w.WriteHeader(status)
	}
	c.render(w, r, "promotion", data)
}

func (c *Console) progress(w http.ResponseWriter, r *http.Request) {
	p, res, err := c.loadPromotion(r)
	if err != nil {
		http.Error(w, err.Error(), max(res.status, 400))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": p.Status, "codeCount": p.CodeCount,
		"generatedCount": p.GeneratedCount, "batches": p.BatchCounts, "summary": p.Summary,
		"percent": funcs["pct"].(func(a, b int64) string)(p.GeneratedCount, p.CodeCount), "deletion": p.Deletion})
}

// export streams the API's CSV to the browser with the session's token.
func (c *Console) export(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := promo.ParseID(id); err != nil {
		http.NotFound(w, r)
		return
	}
	// The API sets its own content headers; the console's CSP stays.
	target := "/v1/promotions/" + id + "/codes"
	if r.URL.Query().Get("partial") == "true" {
		target += "?partial=true"
	}
	c.api.ServeHTTP(w, c.apiRequest(r, http.MethodGet, target, nil))
}

// ---- new promotion ----

// form is the new-promotion form, as submitted.
type form struct {
	Kind, Name, CodeCount, Charset, Custom, Length, Prefix, Suffix, Separator, GroupSize string
	CheckChar                                                                            bool
	Vanity, MaxUsage, PerUser, StartsAt, ExpiresAt, Nonce                                string
}

func readForm(v url.Values) form {
	f := form{Kind: v.Get("kind"), Name: v.Get("name"), CodeCount: v.Get("codeCount"), Charset: v.Get("charset"),
		Custom: v.Get("custom"), Length: v.Get("length"), Prefix: v.Get("prefix"), Suffix: v.Get("suffix"),
		Separator: v.Get("separator"), GroupSize: v.Get("groupSize"), CheckChar: v.Get("checkChar") != "",
		Vanity: v.Get("code"), MaxUsage: v.Get("maxUsagePerCode"), PerUser: v.Get("perUserLimit"),
		StartsAt: v.Get("startsAt"), ExpiresAt: v.Get("expiresAt"), Nonce: v.Get("nonce")}
	if f.Kind != "vanity" {
		f.Kind = "generated"
	}
	return f
}

func defaultForm() form {
	return form{Kind: "generated", CodeCount: "100000", Charset: codes.PresetAlnum, Length: "10", CheckChar: true,
		MaxUsage: "1", PerUser: "1", Nonce: randomToken()}
}

func atoiOr(s string, def int) int {
	n, err := strconv.Atoi(strings.TrimSpace(strings.ReplaceAll(s, ",", "")))
	if err != nil {
		return def
	}
	return n
}

func (f form) format() promo.Format {
	cs := f.Charset
	if cs == "custom" {
		cs = f.Custom
	}
	check := f.CheckChar
	return promo.Format{Charset: cs, Length: atoiOr(f.Length, 0), Prefix: f.Prefix, Suffix: f.Suffix,
		Separator: f.Separator, GroupSize: atoiOr(f.GroupSize, 0), CheckChar: &check}
}

func (f form) count() int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(strings.ReplaceAll(f.CodeCount, ",", "")), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// preview is what the form shows beside the inputs, computed by the code
// engine on every change.
type preview struct {
	Kind        string
	Error       string
	Samples     []string
	Space       string
	Guess       string
	GuessOneIn  string
	Fits        bool
	Limit       string
	Shortest    int
	Count       string
	Description string
	Vanity      string
}

func (c *Console) computePreview(f form) preview {
	if f.Kind == "vanity" {
		v := strings.ToUpper(strings.TrimSpace(f.Vanity))
		p := preview{Kind: "vanity", Vanity: v}
		if n := len(v); n < 3 || n > 64 {
			p.Error = "a vanity code has 3 to 64 characters"
		}
		return p
	}
	p := preview{Kind: "generated"}
	ft := f.format()
	l, err := codes.NewLayout(ft)
	if err != nil {
		p.Error = problemText(err)
		return p
	}
	e, err := codes.NewWithLayout(l, c.previewKey)
	if err != nil {
		p.Error = problemText(err)
		return p
	}
	buf := make([]byte, 0, l.CodeLen())
	for seq := range uint64(min(5, l.Space())) {
		buf = e.AppendCode(buf[:0], seq)
		p.Samples = append(p.Samples, string(l.AppendDisplay(nil, buf)))
	}
	p.Space = humanize.Comma(int64(min(l.Space(), math.MaxInt64)))
	n := f.count()
	p.Count = humanize.Comma(n)
	p.Limit = humanize.Comma(int64(min(codes.SeqLimit(l.Space(), c.cfg.MaxDensity), math.MaxInt64)))
	if n >= 1 {
		g := l.GuessProbability(uint64(n))
		p.Guess = fmt.Sprintf("%.3g", g)
		if g > 0 {
			p.GuessOneIn = humanize.Comma(int64(min(1/g, math.MaxInt64)))
		}
		p.Fits = l.CheckCapacity(n, c.cfg.MaxDensity) == nil
		if !p.Fits {
			p.Shortest = codes.ShortestLength(ft, n, c.cfg.MaxDensity)
		}
	}
	return p
}

// problemText flattens a domain error for display.
func problemText(err error) string {
	var de *promo.Error
	if errors.As(err, &de) {
		var parts []string
		for _, fe := range de.Fields {
			parts = append(parts, fe.Field+": "+fe.Message)
		}
		if len(parts) > 0 {
			return strings.Join(parts, "; ")
		}
		return de.Message
	}
	return err.Error()
}

func (c *Console) newPage(w http.ResponseWriter, r *http.Request) {
	f := defaultForm()
	if r.URL.Query().Get("preview") != "" {
		f = readForm(r.URL.Query())
		if f.Nonce == "" {
			f.Nonce = randomToken()
		}
	}
	c.render(w, r, "new", map[string]any{"F": f, "Preview": c.computePreview(f), "Errors": map[string]string{}})
}

func (c *Console) previewFragment(w http.ResponseWriter, r *http.Request) {
	c.renderFragment(w, "new", "preview", c.computePreview(readForm(r.URL.Query())))
}

func (c *Console) create(w http.ResponseWriter, r *http.Request) {
	f := readForm(r.PostForm)
	body := map[string]any{"name": f.Name}
	errs := map[string]string{}
	if n := strings.TrimSpace(f.MaxUsage); n != "" {
		body["maxUsagePerCode"] = atoiOr(n, -1)
	}
	if n := strings.TrimSpace(f.PerUser); n != "" {
		body["perUserLimit"] = atoiOr(n, -1)
	}
	for _, t := range []struct{ field, v string }{{"startsAt", f.StartsAt}, {"expiresAt", f.ExpiresAt}} {
		if t.v == "" {
			continue
		}
		tm, err := time.Parse("2006-01-02T15:04", t.v)
		if err != nil {
			errs[t.field] = "must be a date and time"
			continue
		}
		body[t.field] = tm.UTC().Format(time.RFC3339)
	}
	if f.Kind == "vanity" {
		body["code"] = f.Vanity
	} else {
		n, err := strconv.ParseInt(strings.TrimSpace(strings.ReplaceAll(f.CodeCount, ",", "")), 10, 64)
		if err != nil {
			errs["codeCount"] = "must be a whole number"
		}
		body["codeCount"] = n
		body["format"] = f.format()
	}
	if len(errs) == 0 {
		b, _ := json.Marshal(body)
		h := http.Header{}
		if f.Nonce != "" {
			h.Set("Idempotency-Key", "console-"+f.Nonce) // a double submit creates one promotion
		}
		res := c.callAPI(r, http.MethodPost, "/v1/promotions", b, h)
		if res.status == http.StatusAccepted || res.status == http.StatusCreated || res.status == http.StatusOK {
			var created struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(res.body, &created)
			http.Redirect(w, r, "/console/promotions/"+url.PathEscape(created.ID), http.StatusSeeOther)
			return
		}
		var p problem
		_ = json.Unmarshal(res.body, &p)
		for _, e := range p.Errors {
			key := e.Field
			if strings.HasPrefix(key, "format.") || key == "format" {
				key = "format"
			}
			if _, dup := errs[key]; dup {
				errs[key] += "; " + e.Message
			} else {
				errs[key] = e.Message
			}
		}
		if len(errs) == 0 {
			errs["form"] = p.Error()
		}
		w.WriteHeader(res.status)
	} else {
		w.WriteHeader(http.StatusUnprocessableEntity)
	}
	c.render(w, r, "new", map[string]any{"F": f, "Preview": c.computePreview(f), "Errors": errs})
}

// ---- operations ----

// deadGroup is what is parked for one promotion and reason.
type deadGroup struct {
	PromotionID string
	Reason      string
	Events      int
	Codes       int64
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
	}
	sort.Slice(groups, func(i, j int) bool {
		if groups[i].PromotionID != groups[j].PromotionID {
			return groups[i].PromotionID > groups[j].PromotionID
		}
		return groups[i].Reason < groups[j].Reason
	})
	out := make([]deadGroup, len(groups))
	for i, g := range groups {
		if _, err := promo.ParseID(g.PromotionID); err == nil {
			res := c.callAPI(r, http.MethodGet, "/v1/promotions/"+g.PromotionID, nil, nil)
			var p promotionView
			if decodeAPI(res, http.StatusOK, &p) == nil {
				g.Status, g.Summary = p.Status, p.Summary
			}
		}
		out[i] = *g
	}
	return out, len(entries), nil
}

func (c *Console) opsPage(w http.ResponseWriter, r *http.Request) {
	c.renderOps(w, r, nil)
}

func (c *Console) renderOps(w http.ResponseWriter, r *http.Request, extra map[string]any) {
	data := map[string]any{"DeadTopic": c.ops.DeadTopic, "BatchesTopic": c.ops.BatchesTopic}
	groups, n, err := c.deadGroups(r)
	if err != nil {
		data["DeadError"] = err.Error()
	}
	data["Groups"], data["DeadCount"] = groups, n
	if c.ops.ShovelHistory != nil {
		data["Cycles"] = c.ops.ShovelHistory.Last()
		data["HasHistory"] = true
	}
	for k, v := range extra {
		data[k] = v
	}
	c.render(w, r, "ops", data)
}

// replay does what `promocodes topics replay --from <dead> --to <batches>
// [--promotion ID] [--reset-retries] [--dry-run]` does: a dry run first,
// then, confirmed, the copy.
func (c *Console) replay(w http.ResponseWriter, r *http.Request) {
	if c.ops.Client == nil || c.ops.Publisher == nil {
		c.fail(w, r, http.StatusServiceUnavailable, errors.New("no Kafka client in this process"))
		return
	}
	pid := strings.TrimSpace(r.PostFormValue("promotion"))
	if pid != "" {
		if _, err := promo.ParseID(pid); err != nil {
			c.fail(w, r, http.StatusUnprocessableEntity, fmt.Errorf("promotion %q is not a promotion id", pid))
			return
		}
	}
	confirm := r.PostFormValue("action") == "confirm"
	o := shovel.ReplayOptions{From: c.ops.DeadTopic, To: c.ops.BatchesTopic, Filter: shovel.Filter{PromotionID: pid},
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
		"Promotion": pid, "ResetRetries": o.ResetRetries}})
}
