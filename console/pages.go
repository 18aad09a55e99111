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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/client"
	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
)

var funcs = template.FuncMap{
	// off: the API reports the flag and it is false.
	"off":   func(b *bool) bool { return b != nil && !*b },
	"comma": func(n int64) string { return humanize.Comma(n) },
	// percent renders a share in [0, 1] as a percentage.
	"percent": func(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + " %" },
	"has":     func(list []string, s string) bool { return slices.Contains(list, s) },
	"pct": func(a, b int64) string {
		if b <= 0 {
			return "0"
		}
		return strconv.FormatFloat(math.Min(100, 100*float64(a)/float64(b)), 'f', 1, 64)
	},
	// codeURL is the console page of a code, user or redemption.
	"codeURL": func(code string) string { return "/console/codes/" + url.PathEscape(code) },
	"userURL": func(user string) string { return "/console/users/" + url.PathEscape(user) },
	// batchTopic is the topic browser's topic where a batch in state st
	// has its newest event: dead when parked, retry while retrying.
	"batchTopic": func(st promo.BatchState) string {
		switch st {
		case promo.BatchParked:
			return "dead"
		case promo.BatchRetrying:
			return "retry"
		}
		return "batches"
	},
	// detail is an audit entry's change as the log holds it (JSON).
	"detail": func(d json.RawMessage) string {
		if s := string(d); s != "null" && s != "{}" {
			return s
		}
		return ""
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

// failAPI is the error page of a failed API call, under the API's status.
func (c *Console) failAPI(w http.ResponseWriter, r *http.Request, err error) {
	c.fail(w, r, apiStatus(err), errors.New(apiMessage(err)))
}

// ---- promotions list ----

type listData struct {
	Items      []client.Status
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
	lq := client.ListQuery{Status: promo.Status(q.Get("status")), Name: q.Get("name"), Cursor: q.Get("cursor"), Limit: 50}
	switch q.Get("active") {
	case "true":
		lq.Active = new(true)
	case "false":
		lq.Active = new(false)
	case "":
	default:
		return listData{}, &client.ProblemError{Status: http.StatusUnprocessableEntity,
			Errors: []promo.FieldError{{Field: "active", Message: "must be true or false"}}}
	}
	api, ctx := c.apiFor(r)
	page, err := api.ListPromotions(ctx, lq)
	if err != nil {
		return listData{}, err
	}
	return listData{Items: page.Items, NextCursor: page.NextCursor, Query: q, Status: q.Get("status"),
		Name: q.Get("name"), Active: q.Get("active")}, nil
}

func (c *Console) listPage(w http.ResponseWriter, r *http.Request) {
	d, err := c.fetchList(r)
	if err != nil {
		c.failAPI(w, r, err)
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
		c.failAPI(w, r, err)
		return
	}
	c.renderFragment(w, "list", "rows", d)
}

// ---- one promotion ----

// loadPromotion reads the promotion of the request's {id}.
func (c *Console) loadPromotion(r *http.Request) (client.Status, error) {
	id := r.PathValue("id")
	if _, err := promo.ParseID(id); err != nil {
		return client.Status{}, &client.ProblemError{Status: http.StatusNotFound, Detail: fmt.Sprintf("%q is not a promotion id", id)}
	}
	api, ctx := c.apiFor(r)
	return api.GetPromotion(ctx, id)
}

func (c *Console) promotionPage(w http.ResponseWriter, r *http.Request) {
	c.renderPromotion(w, r, http.StatusOK, nil)
}

// maxBatchRows bounds the "Batches not complete" table (a 100,000,000-code
// promotion has 2,000 batches); the rest are counted.
const maxBatchRows = 50

// liveData is what the page's live parts show (template "live"): the
// promotion's status, deletion, summary and incomplete batches, read
// together so that they agree.
func (c *Console) liveData(r *http.Request, p client.Status) map[string]any {
	data := map[string]any{"P": p, "L": lifecycleOf(p), "Active": p.Active}
	if c.batches != nil {
		id, _ := promo.ParseID(p.ID)
		bs, err := c.batches.IncompleteBatches(r.Context(), id)
		if err != nil {
			data["BatchesError"] = err.Error()
		}
		if len(bs) > maxBatchRows {
			data["BatchesMore"] = int64(len(bs) - maxBatchRows)
			bs = bs[:maxBatchRows]
		}
		data["Batches"] = bs
	}
	if p.Format != nil {
		if l, err := codes.NewLayout(*p.Format); err == nil {
			data["Space"] = humanize.Comma(int64(min(l.Space(), math.MaxInt64)))
			data["Guess"] = fmt.Sprintf("%.3g", l.GuessProbability(uint64(p.CodeCount)))
			if l.IsSerial() {
				data["Space"] = "serials up to " + data["Space"].(string) + ", tails " +
					humanize.Comma(int64(l.TailSpace()))
			}
		}
	}
	return data
}

// renderPromotion renders a promotion's page under status, with extra (an
// action's error and its form values) merged in.
func (c *Console) renderPromotion(w http.ResponseWriter, r *http.Request, status int, extra map[string]any) {
	p, err := c.loadPromotion(r)
	if err != nil {
		c.failAPI(w, r, err)
		return
	}
	api, ctx := c.apiFor(r)
	data := c.liveData(r, p)
	data["Nonce"], data["ActionError"], data["Form"] = randomToken(), map[string]string{}, map[string]string{}
	if page, err := api.AuditLog(ctx, p.ID, "", auditPage); err == nil {
		data["Audit"] = page.Entries[:min(len(page.Entries), auditPage)]
	} else {
		data["AuditError"] = apiMessage(err)
	}
	if win, err := chooseWindow(r.URL.Query(), []time.Time{p.CreatedAt}, time.Now()); err != nil {
		data["StatsError"] = err.Error()
	} else if st, err := statsFor(ctx, api, p.ID, win); err != nil {
		data["StatsError"] = apiMessage(err)
	} else {
		data["Stats"], data["Chart"], data["Bucket"] = st, promotionChart("chart", st), string(win.Bucket)
		data["Rate"] = strconv.FormatFloat(100*st.RedemptionRate, 'f', 2, 64)
	}
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

// live renders the promotion page's live parts again, together, for the
// page's script to swap in (static/console.js).
func (c *Console) live(w http.ResponseWriter, r *http.Request) {
	p, err := c.loadPromotion(r)
	if err != nil {
		c.failAPI(w, r, err)
		return
	}
	c.renderFragment(w, "promotion", "live", c.liveData(r, p))
}

// export streams the API's CSV of a promotion's codes to the browser: the
// API's refusal (not completed, say) is an error page; a stream cut after
// its first bytes is cut for the browser too.
func (c *Console) export(w http.ResponseWriter, r *http.Request) {
	id, ok := c.promotionID(w, r)
	if !ok {
		return
	}
	api, ctx := c.apiFor(r)
	out := &download{w: w, name: "promotion-" + id + "-codes.csv"}
	var err error
	if r.URL.Query().Get("partial") == "true" {
		_, err = api.ExportPartialCodes(ctx, id, out)
	} else {
		_, err = api.ExportCodes(ctx, id, out)
		if p, ok := asProblem(err); ok && p.Status == http.StatusConflict && !out.started {
			c.exportRefused(w, r, id, err)
			return
		}
	}
	out.end(w, r, c, err)
}

// exportRefused answers the export of a promotion that is not completed:
// why, in the console's words, and the export of the codes that exist.
func (c *Console) exportRefused(w http.ResponseWriter, r *http.Request, id string, refusal error) {
	api, ctx := c.apiFor(r)
	p, err := api.GetPromotion(ctx, id)
	if err != nil {
		c.failAPI(w, r, refusal)
		return
	}
	why := "it is still being generated"
	switch p.Status {
	case promo.StatusPending, promo.StatusGenerating:
	case promo.StatusCancelled:
		why = "it was cancelled and will not complete"
	case promo.StatusFailed:
		why = "batches are parked, and it completes once they are replayed (Operations)"
	default:
		why = "it is " + string(p.Status) + " and will not complete"
	}
	w.WriteHeader(http.StatusConflict)
	c.render(w, r, "error", map[string]any{"Status": http.StatusConflict,
		"Error": fmt.Sprintf("Promotion %s (%s) has %s of %s codes: %s, so the export of all its codes is not offered.",
			p.ID, p.Name, humanize.Comma(p.GeneratedCount), humanize.Comma(p.CodeCount), why),
		"Offer":     "/console/promotions/" + id + "/codes.csv?partial=true",
		"OfferText": "Export the " + humanize.Comma(p.GeneratedCount) + " codes that exist (CSV)",
		"Back":      "/console/promotions/" + id})
}

// download writes a CSV download to the browser, its headers at the first
// byte, so that a refusal before any byte can still be an error page.
type download struct {
	w       http.ResponseWriter
	name    string
	started bool
}

func (d *download) Write(p []byte) (int, error) {
	if !d.started {
		d.started = true
		h := d.w.Header()
		h.Set("Content-Type", "text/csv; charset=utf-8")
		h.Set("Content-Disposition", `attachment; filename="`+d.name+`"`)
		h.Set("Cache-Control", "no-store")
	}
	return d.w.Write(p)
}

// end finishes a download: an error before the first byte is an error
// page; after it, the connection is cut so that the browser sees an
// incomplete transfer, not a complete-looking file.
func (d *download) end(w http.ResponseWriter, r *http.Request, c *Console, err error) {
	switch {
	case err == nil:
	case !d.started:
		c.failAPI(w, r, err)
	default:
		c.log.Warn("console download cut short", zap.String("file", d.name), zap.Error(err))
		panic(http.ErrAbortHandler)
	}
}

// ---- new promotion ----

// form is the new-promotion form, as submitted.
type form struct {
	Kind, Name, CodeCount, Charset, Custom, Length, Prefix, Suffix, Separator, GroupSize string
	CheckChar                                                                            bool
	// Style is "random" or "serial"; SerialDigits and TailLength are the
	// serial style's fields (Length and GroupSize the random style's).
	Style, SerialDigits, TailLength                       string
	Vanity, MaxUsage, PerUser, StartsAt, ExpiresAt, Nonce string
}

func readForm(v url.Values) form {
	f := form{Kind: v.Get("kind"), Name: v.Get("name"), CodeCount: v.Get("codeCount"), Charset: v.Get("charset"),
		Custom: v.Get("custom"), Length: v.Get("length"), Prefix: v.Get("prefix"), Suffix: v.Get("suffix"),
		Separator: v.Get("separator"), GroupSize: v.Get("groupSize"), CheckChar: v.Get("checkChar") != "",
		Style: v.Get("style"), SerialDigits: v.Get("serialDigits"), TailLength: v.Get("tailLength"),
		Vanity: v.Get("code"), MaxUsage: v.Get("maxUsagePerCode"), PerUser: v.Get("perUserLimit"),
		StartsAt: v.Get("startsAt"), ExpiresAt: v.Get("expiresAt"), Nonce: v.Get("nonce")}
	if f.Kind != "vanity" {
		f.Kind = "generated"
	}
	if f.Style != promo.StyleSerial {
		f.Style = promo.StyleRandom
	}
	return f
}

func defaultForm() form {
	return form{Kind: "generated", CodeCount: "100000", Charset: codes.PresetAlnum, Length: "10", CheckChar: true,
		Style: promo.StyleRandom, SerialDigits: "6", TailLength: "5", MaxUsage: "1", PerUser: "1", Nonce: randomToken()}
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
	if f.Style == promo.StyleSerial {
		// The random style's inputs are hidden, not sent empty: leave them out.
		return promo.Format{Style: promo.StyleSerial, Charset: cs, SerialDigits: atoiOr(f.SerialDigits, 0),
			TailLength: atoiOr(f.TailLength, 0), Prefix: f.Prefix, Suffix: f.Suffix, Separator: f.Separator,
			CheckChar: &check}
	}
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
	// The serial style's: the tail space, the capacity refusal, the
	// shortest tail for the density limit and the fewest digits for the
	// count.
	Serial       bool
	TailSpace    string
	Refusal      string
	ShortestTail int
	FewestDigits int
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
	p.Limit = humanize.Comma(int64(min(l.SeqLimit(c.cfg.MaxDensity), math.MaxInt64)))
	p.Serial = l.IsSerial()
	if p.Serial {
		p.TailSpace = humanize.Comma(int64(l.TailSpace()))
	}
	if n >= 1 {
		g := l.GuessProbability(uint64(n))
		p.Guess = fmt.Sprintf("%.3g", g)
		if g > 0 {
			p.GuessOneIn = humanize.Comma(int64(min(1/g, math.MaxInt64)))
		}
		err := l.CheckCapacity(n, c.cfg.MaxDensity)
		p.Fits = err == nil
		switch {
		case p.Fits:
		case p.Serial:
			p.Refusal = problemText(err)
			if t := codes.ShortestTail(ft, c.cfg.MaxDensity); t > ft.TailLength {
				p.ShortestTail = t
			}
			if d := codes.FewestSerialDigits(n); d > ft.SerialDigits {
				p.FewestDigits = d
			}
		default:
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
	_ = r.ParseForm() // an unreadable body leaves the form empty: the API names what is missing
	f := readForm(r.PostForm)
	req := client.CreateRequest{Name: f.Name}
	errs := map[string]string{}
	if n := strings.TrimSpace(f.MaxUsage); n != "" {
		req.MaxUsagePerCode = new(atoiOr(n, -1))
	}
	if n := strings.TrimSpace(f.PerUser); n != "" {
		req.PerUserLimit = new(atoiOr(n, -1))
	}
	req.StartsAt = formTimeField(errs, "startsAt", f.StartsAt)
	req.ExpiresAt = formTimeField(errs, "expiresAt", f.ExpiresAt)
	if f.Kind == "vanity" {
		req.Code = f.Vanity
	} else {
		n, err := strconv.ParseInt(strings.TrimSpace(strings.ReplaceAll(f.CodeCount, ",", "")), 10, 64)
		if err != nil {
			errs["codeCount"] = "must be a whole number"
		}
		req.CodeCount = n
		req.Format = new(f.format())
	}
	if len(errs) == 0 {
		api, ctx := c.apiFor(r)
		key := ""
		if f.Nonce != "" {
			key = "console-" + f.Nonce // a double submit creates one promotion
		}
		created, err := api.CreatePromotion(ctx, req, key)
		if err == nil {
			http.Redirect(w, r, "/console/promotions/"+url.PathEscape(created.ID), http.StatusSeeOther)
			return
		}
		var p *client.ProblemError
		if errors.As(err, &p) {
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
		}
		if len(errs) == 0 {
			errs["form"] = apiMessage(err)
		}
		w.WriteHeader(apiStatus(err))
	} else {
		w.WriteHeader(http.StatusUnprocessableEntity)
	}
	c.render(w, r, "new", map[string]any{"F": f, "Preview": c.computePreview(f), "Errors": errs})
}
