package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/promocodes/promocodes/pkg/app"
	"github.com/promocodes/promocodes/pkg/client"
	"github.com/promocodes/promocodes/pkg/config"
	"github.com/promocodes/promocodes/pkg/promo"
)

const (
	promotionsDefaultURL = "http://127.0.0.1:8080"
	// promotionsDeadTopic is the default dead-letter topic (kafka.topics.dead);
	// the client cannot know a server's override, so hints name the default.
	promotionsDeadTopic = "promotion-code-batches-dead"
	// promotionsPlainEvery spaces progress lines when stderr is not a terminal.
	promotionsPlainEvery = 5 * time.Second
)

// promotionsCLI holds the flags shared by the promotions subcommands.
type promotionsCLI struct {
	apiURL string
	token  string
	config string
}

// newPromotionsCmd is the admin client of the Promotion API. The logic lives
// in pkg/client; this only maps flags to calls and results to text.
func newPromotionsCmd() *cobra.Command {
	p := &promotionsCLI{}
	cmd := &cobra.Command{
		Use:   "promotions",
		Short: "Admin client: create promotions, follow their generation, export their codes",
	}
	defURL := os.Getenv("PROMOCODES_CLIENT_URL")
	if defURL == "" {
		defURL = promotionsDefaultURL
	}
	cmd.PersistentFlags().StringVar(&p.apiURL, "api-url", defURL, "Promotion API base URL (env PROMOCODES_CLIENT_URL)")
	// The token's default stays out of the flag so --help never prints it.
	cmd.PersistentFlags().StringVar(&p.token, "token", "", "admin bearer token (env PROMOCODES_CLIENT_TOKEN)")
	cmd.PersistentFlags().StringVar(&p.config, "config", "",
		"server config file (YAML, env PROMOCODES_CONFIG): the API at its http.addr, its first admin token")
	cmd.AddCommand(p.createCmd(), p.statusCmd(), p.exportCmd(), p.updateCmd(), p.cancelCmd(), p.topUpCmd(), p.deleteCmd(), p.auditCmd())
	return cmd
}

func (p *promotionsCLI) client(cmd *cobra.Command, opts ...client.Option) (*client.Client, error) {
	token := p.token
	if token == "" {
		token = os.Getenv("PROMOCODES_CLIENT_TOKEN")
	}
	apiURL := p.apiURL
	file := p.config
	if file == "" {
		file = os.Getenv("PROMOCODES_CONFIG")
	}
	// With a server's config, talk to that server (unless a URL is given)
	// with its first admin token (unless a token is given).
	if file != "" {
		cfg, err := config.Load(app.Defaults(), file, nil)
		if err != nil {
			return nil, err
		}
		if !cmd.Flags().Changed("api-url") && os.Getenv("PROMOCODES_CLIENT_URL") == "" {
			host, port, err := net.SplitHostPort(cfg.HTTP.Addr)
			if err != nil {
				return nil, fmt.Errorf("http.addr %q: %w", cfg.HTTP.Addr, err)
			}
			if host == "" || host == "0.0.0.0" || host == "::" {
				host = "127.0.0.1"
			}
			apiURL = "http://" + net.JoinHostPort(host, port)
		}
		if token == "" && len(cfg.Auth.AdminTokens) > 0 {
			token = cfg.Auth.AdminTokens[0]
		}
	}
	return client.New(apiURL, token, opts...)
}

func (p *promotionsCLI) createCmd() *cobra.Command {
	var (
		req                 client.CreateRequest
		ff                  formatFlags
		startsAt, expiresAt string
		maxUsage, perUser   int
		idempotencyKey      string
		wait                bool
		pollInterval        time.Duration
		stallAfter          time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME (--count N [format flags] | --code VANITY)",
		Short: "Create a promotion and print its id; --wait follows generation to the end",
		Example: `  promocodes promotions create --name winter --count 5000000 --prefix WNTR- --separator - --group-size 4 --wait
  promocodes promotions create --name spring --count 100000 --style serial --serial-digits 6 --tail-length 5 --prefix SPRING- --separator -
  promocodes promotions create --name megadeth --code MEGADETH21 --max-usage 1000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req.MaxUsagePerCode, req.PerUserLimit = &maxUsage, &perUser // 0 per user is "no limit", so always sent
			if req.Code == "" {
				format := ff.format()
				req.Format = &format
			}
			var err error
			if req.StartsAt, err = promotionsParseTime("starts-at", startsAt); err != nil {
				return err
			}
			if req.ExpiresAt, err = promotionsParseTime("expires-at", expiresAt); err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			w := &promotionsWaiter{out: stderr, tty: promotionsIsTerminal(stderr), stallAfter: stallAfter}
			c, err := p.client(cmd, client.WithRetryNotify(w.retrying))
			if err != nil {
				return err
			}
			start := time.Now()
			created, err := c.CreatePromotion(cmd.Context(), req, idempotencyKey)
			if err != nil {
				return promotionsError(err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), created.ID)
			if created.Replayed {
				fmt.Fprintf(stderr, "promotion %s was already created with this idempotency key\n", created.ID)
			}
			if !wait {
				return nil
			}
			return w.wait(cmd.Context(), c, created.ID, pollInterval, start)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Name, "name", "", "promotion name (required)")
	f.Int64Var(&req.CodeCount, "count", 0, "number of codes to generate")
	ff.register(cmd)
	f.StringVar(&req.Code, "code", "", "a single vanity code instead of generated ones")
	f.IntVar(&maxUsage, "max-usage", 1, "redemptions allowed per code")
	f.IntVar(&perUser, "per-user-limit", 1, "redemptions allowed per user (0: no limit)")
	f.StringVar(&startsAt, "starts-at", "", "start of the validity window, RFC 3339")
	f.StringVar(&expiresAt, "expires-at", "", "end of the validity window, RFC 3339")
	f.StringVar(&idempotencyKey, "idempotency-key", "", "makes the create safe to repeat: a repeat returns the first promotion")
	f.BoolVar(&wait, "wait", false, "show progress until generation completes; exit 1 if it fails")
	f.DurationVar(&pollInterval, "poll-interval", time.Second, "how often --wait asks for progress")
	f.DurationVar(&stallAfter, "stall-warning", 30*time.Second,
		"with --wait, say that no generator seems to be consuming after this long without progress (0: never)")
	_ = cmd.MarkFlagRequired("name")
	cmd.MarkFlagsOneRequired("count", "code")
	for _, name := range append([]string{"count"}, formatFlagNames...) {
		cmd.MarkFlagsMutuallyExclusive("code", name)
	}
	return cmd
}

func (p *promotionsCLI) statusCmd() *cobra.Command {
	var (
		asJSON       bool
		wait         bool
		pollInterval time.Duration
		stallAfter   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status ID [--wait]",
		Short: "Show a promotion's generation progress; --wait follows it to the end",
		Long: `Show a promotion's generation progress. With --wait, follow it (a progress bar on a terminal, a line
every few seconds otherwise) until generation ends, then show the status: exit 0 when it completed, 1 when
batches were parked, it was cancelled, or it is being deleted. Use it after a create without --wait or
after a top-up.`,
		Example: `  promocodes promotions status 7
  promocodes promotions topup 7 --count 100000 && promocodes promotions status 7 --wait`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			stderr := cmd.ErrOrStderr()
			w := &promotionsWaiter{out: stderr, tty: promotionsIsTerminal(stderr), stallAfter: stallAfter}
			c, err := p.client(cmd, client.WithRetryNotify(w.retrying))
			if err != nil {
				return err
			}
			var st client.Status
			if wait {
				st, err = w.follow(cmd.Context(), c, args[0], pollInterval)
			} else {
				st, err = c.GetPromotion(cmd.Context(), args[0])
			}
			if err != nil {
				return promotionsError(err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				out.Write(st.Raw)
				if !strings.HasSuffix(string(st.Raw), "\n") {
					fmt.Fprintln(out)
				}
				return nil
			}
			fmt.Fprintln(out, promotionsStatusLine(st))
			if st.Batches.Parked > 0 {
				fmt.Fprintln(out, promotionsDeadHint(st.ID))
			}
			if wait && st.Status != promo.StatusCompleted {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON as is")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow generation until it ends; exit 1 unless it completed")
	cmd.Flags().DurationVar(&pollInterval, "poll-interval", time.Second, "how often --wait asks for progress")
	cmd.Flags().DurationVar(&stallAfter, "stall-warning", 30*time.Second,
		"with --wait, say that no generator seems to be consuming after this long without progress (0: never)")
	return cmd
}

func (p *promotionsCLI) exportCmd() *cobra.Command {
	var output string
	var partial bool
	cmd := &cobra.Command{
		Use:   "export ID [-o FILE]",
		Short: "Stream a promotion's codes as CSV to stdout or a file",
		Long: `Stream a promotion's codes as CSV (header row first) to stdout or, with -o, to FILE.
The file is written as FILE.tmp and renamed when complete, so a failed export leaves no partial FILE.
A promotion that is still generating (or has parked batches) is refused unless --partial is given.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := p.client(cmd)
			if err != nil {
				return err
			}
			ctx, id := cmd.Context(), args[0]
			export := c.ExportCodes
			if partial {
				export = c.ExportPartialCodes
			}
			if output == "" || output == "-" {
				if _, err := export(ctx, id, cmd.OutOrStdout()); err != nil {
					return promotionsExportError(ctx, c, id, err)
				}
				return nil
			}
			rows, err := promotionsExportFile(ctx, export, id, output)
			if err != nil {
				return promotionsExportError(ctx, c, id, err)
			}
			what := "codes"
			if partial {
				what = "codes (partial export: the promotion may not be complete)"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "exported %s %s to %s\n", humanize.Comma(rows), what, output)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to FILE (via FILE.tmp, renamed on success) instead of stdout")
	cmd.Flags().BoolVar(&partial, "partial", false, "export the codes that exist even if the promotion is not completed")
	return cmd
}

// promotionsExportError explains a refused export of an unfinished
// promotion in the CLI's terms: what state it is in, whether it can still
// complete, and the flags to use.
func promotionsExportError(ctx context.Context, c *client.Client, id string, err error) error {
	var p *client.ProblemError
	if !errors.As(err, &p) || p.Status != http.StatusConflict {
		return promotionsError(err)
	}
	st, serr := c.GetPromotion(ctx, id)
	if serr != nil { // the refusal itself is what matters
		return &exitError{code: 1, msg: fmt.Sprintf("error: %s\n  nothing was written; export what exists with --partial", p.Detail)}
	}
	what := fmt.Sprintf("promotion %s is %s (%s of %s codes)", id, st.Status,
		humanize.Comma(st.GeneratedCount), humanize.Comma(st.CodeCount))
	switch st.Status {
	case promo.StatusPending, promo.StatusGenerating:
		what += fmt.Sprintf(": export it once it completed (`promocodes promotions status %s --wait` follows it)", id)
	case promo.StatusFailed:
		what += fmt.Sprintf(": batches are parked (`%s`); once replayed it can complete", promotionsDeadCmd(id))
	default: // cancelled, deleting, deleted: it will not complete
		what += ": it will not complete"
	}
	return &exitError{code: 1, msg: fmt.Sprintf("error: %s\n"+
		"  nothing was written. Export the codes that exist with `promocodes promotions export %s --partial`", what, id)}
}

// promotionsExportFile writes the export to path+".tmp" and renames it to
// path only once the whole CSV is on disk.
func promotionsExportFile(ctx context.Context, export func(context.Context, string, io.Writer) (int64, error),
	id, path string) (rows int64, err error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if rows, err = export(ctx, id, f); err != nil {
		return rows, err
	}
	if err = f.Sync(); err != nil {
		return rows, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return rows, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return rows, err
	}
	return rows, nil
}

// promotionsWaiter renders WaitPromotion's progress on stderr: a bar on a
// terminal, a plain line every few seconds otherwise (logs, CI).
type promotionsWaiter struct {
	out       io.Writer
	tty       bool
	bar       *progressbar.ProgressBar
	lastPrint time.Time
	lastGen   int64
	start     time.Time
	// stallAfter is how long generatedCount may stand still before the
	// waiter says no generator seems to be consuming (0: never).
	stallAfter time.Duration
	moved      time.Time // when generatedCount last changed
	movedGen   int64
	warned     bool
	id         string
}

// follow shows progress until generation ends (completed, failed,
// cancelled, deleting or deleted) and returns the last status. Ctrl-C ends
// the wait, not the generation, and says so.
func (w *promotionsWaiter) follow(ctx context.Context, c *client.Client, id string, interval time.Duration) (client.Status, error) {
	w.id, w.moved, w.movedGen = id, time.Now(), -1
	st, err := c.WaitPromotion(ctx, id, interval, w.progress)
	if w.bar != nil {
		if st.Status == promo.StatusCompleted {
			_ = w.bar.Finish()
		} else {
			_ = w.bar.Exit()
		}
	}
	if err != nil && errors.Is(err, context.Canceled) {
		return st, &exitError{code: 130, msg: fmt.Sprintf("stopped waiting; promotion %s goes on generating: "+
			"promocodes promotions status %s --wait", id, id)}
	}
	return st, err
}

// wait follows a promotion just created and sums up: the rate on success,
// why it ended otherwise (exit 1).
func (w *promotionsWaiter) wait(ctx context.Context, c *client.Client, id string, interval time.Duration, start time.Time) error {
	w.start = start
	st, err := w.follow(ctx, c, id, interval)
	if err != nil {
		return promotionsError(err)
	}
	if msg := promotionsUnfinished(st); msg != "" {
		return &exitError{code: 1, msg: msg}
	}
	elapsed := time.Since(w.start)
	fmt.Fprintf(w.out, "completed %s codes in %s (%s codes/s)\n",
		humanize.Comma(st.CodeCount), elapsed.Round(100*time.Millisecond), promotionsRate(st.CodeCount, elapsed))
	return nil
}

func (w *promotionsWaiter) progress(st client.Status) {
	w.checkStall(st)
	if !w.tty {
		if st.Done() || time.Since(w.lastPrint) < promotionsPlainEvery {
			return // the final state gets its own summary
		}
		line := promotionsStatusLine(st)
		if !w.lastPrint.IsZero() { // a rate over the last interval, not since the start
			line += " (" + promotionsRate(st.GeneratedCount-w.lastGen, time.Since(w.lastPrint)) + " codes/s)"
		}
		w.lastPrint, w.lastGen = time.Now(), st.GeneratedCount
		fmt.Fprintln(w.out, line)
		return
	}
	if w.bar == nil {
		w.bar = progressbar.NewOptions64(max(st.CodeCount, 1),
			progressbar.OptionSetWriter(w.out),
			progressbar.OptionSetDescription("generating"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("codes"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetRenderBlankState(true),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w.out) }),
		)
	}
	desc := "generating"
	if st.Batches.Retrying > 0 || st.Batches.Parked > 0 {
		desc = fmt.Sprintf("generating (%d retrying, %d parked)", st.Batches.Retrying, st.Batches.Parked)
	}
	w.bar.Describe(desc)
	_ = w.bar.Set64(min(st.GeneratedCount, w.bar.GetMax64()))
}

// checkStall says once, after stallAfter without a new code, that no
// generator seems to be consuming the batch events, and how to check; it
// says so again if progress resumes and stalls once more.
func (w *promotionsWaiter) checkStall(st client.Status) {
	if st.GeneratedCount != w.movedGen {
		w.moved, w.movedGen, w.warned = time.Now(), st.GeneratedCount, false
		return
	}
	if w.stallAfter <= 0 || w.warned || st.Done() || time.Since(w.moved) < w.stallAfter {
		return
	}
	w.warned = true
	if w.bar != nil {
		_ = w.bar.Clear()
	}
	fmt.Fprintf(w.out, "no progress for %s (%s / %s codes): no generator seems to be consuming the batch events.\n"+
		"  Check that a generator runs (`promocodes generator`, or `promocodes dev` which includes one; on Kubernetes\n"+
		"  `kubectl get pods -l app.kubernetes.io/component=generator`), that it reaches the broker and database\n"+
		"  (its /readyz and log), and its consumer group lag (`kcat -b BROKER -L`, or kafka-consumer-groups.sh --describe\n"+
		"  --group promocodes-generator). Still waiting; Ctrl-C stops waiting, generation goes on.\n",
		time.Since(w.moved).Round(time.Second), humanize.Comma(st.GeneratedCount), humanize.Comma(st.CodeCount))
}

// retrying tells the user why progress stalls while the API is unreachable.
func (w *promotionsWaiter) retrying(err error, next time.Duration) {
	if w.bar != nil {
		_ = w.bar.Clear()
	}
	fmt.Fprintf(w.out, "retrying in %s: %v\n", next.Round(100*time.Millisecond), err)
}

// promotionsUnfinished says why generation ended without completing, or ""
// when it completed.
func promotionsUnfinished(st client.Status) string {
	gen, total := humanize.Comma(st.GeneratedCount), humanize.Comma(st.CodeCount)
	switch st.Status {
	case promo.StatusCompleted:
		return ""
	case promo.StatusFailed:
		return fmt.Sprintf("failed: %s / %s codes — %s parked after retries; see %s", gen, total,
			promotionsPlural(st.Batches.Parked, "batch", "batches"), "`"+promotionsDeadCmd(st.ID)+"`")
	case promo.StatusCancelled:
		return fmt.Sprintf("cancelled: %s / %s codes exist; `promocodes promotions export %s --partial` exports them",
			gen, total, st.ID)
	default:
		return fmt.Sprintf("%s: %s / %s codes", st.Status, gen, total)
	}
}

// promotionsStatusLine: "completed 1,000,000 / 1,000,000 codes, 20/20
// batches; 0 retrying, 0 parked".
func promotionsStatusLine(st client.Status) string {
	return fmt.Sprintf("%s %s / %s codes, %d/%d batches; %d retrying, %d parked",
		st.Status, humanize.Comma(st.GeneratedCount), humanize.Comma(st.CodeCount),
		st.Batches.Completed, st.Batches.Total, st.Batches.Retrying, st.Batches.Parked)
}

func promotionsDeadCmd(id string) string {
	return "promocodes topics inspect " + promotionsDeadTopic + " --promotion " + id
}

func promotionsDeadHint(id string) string {
	return "parked batches are in the dead-letter topic; see `" + promotionsDeadCmd(id) + "`"
}

// promotionsError prints a problem answer's detail and each field on its own
// line; other errors pass through to main's "error: ..." line.
func promotionsError(err error) error {
	var p *client.ProblemError
	if !errors.As(err, &p) || len(p.Errors) == 0 {
		return err
	}
	fields := *p
	fields.Errors = nil
	prefix, ok := strings.CutSuffix(err.Error(), p.Error())
	if !ok {
		prefix = ""
	}
	var b strings.Builder
	b.WriteString("error: " + prefix + fields.Error())
	for _, f := range p.Errors {
		b.WriteString("\n  " + f.Field + ": " + f.Message)
	}
	return &exitError{code: 1, msg: b.String()}
}

func promotionsParseTime(flag, s string) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return nil, fmt.Errorf("--%s: want RFC 3339 (2026-12-01T00:00:00Z), got %q", flag, s)
	}
	return &t, nil
}

func promotionsIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func promotionsRate(n int64, d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	return humanize.Comma(int64(float64(n) / d.Seconds()))
}

func promotionsPlural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
