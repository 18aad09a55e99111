package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/promocodes/promocodes/pkg/app"
	"github.com/promocodes/promocodes/pkg/client"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/promotion"
)

// codesRevokeCmd revokes one code through the API (admin).
func codesRevokeCmd() *cobra.Command {
	p := &promotionsCLI{}
	var reason string
	cmd := &cobra.Command{
		Use:     "revoke CODE --reason TEXT",
		Short:   "Revoke one code (admin): it answers 410 revoked from now on; audited",
		Args:    cobra.ExactArgs(1),
		Example: `  promocodes codes revoke WNTR-7KQ2-M9XD-P3X --reason "posted on a coupon site"`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if reason == "" {
				return &exitError{code: 2, msg: "error: --reason is required (it goes to the audit log)"}
			}
			c, err := p.client(cmd)
			if err != nil {
				return err
			}
			r, err := c.RevokeCode(cmd.Context(), args[0], reason)
			if err != nil {
				return promotionsError(err)
			}
			what := "revoked"
			if r.Replayed {
				what = "was already revoked"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s at %s (promotion %s): %s\n", r.Code, what,
				r.RevokedAt.Format(time.RFC3339), r.PromotionID, r.Reason)
			return nil
		},
	}
	apiFlags(cmd, p, "admin")
	cmd.Flags().StringVar(&reason, "reason", "", "why (required; kept in the audit log)")
	return cmd
}

// updateCmd changes a promotion's name, window or active flag.
func (p *promotionsCLI) updateCmd() *cobra.Command {
	var (
		name, startsAt, expiresAt string
		active                    bool
	)
	cmd := &cobra.Command{
		Use:   "update ID [--name N] [--starts-at T|none] [--expires-at T|none] [--active=true|false]",
		Short: "Change a promotion's name, window or active flag (deactivated codes answer 410 deactivated); audited",
		Args:  cobra.ExactArgs(1),
		Example: `  promocodes promotions update 7 --active=false
  promocodes promotions update 7 --expires-at 2026-12-31T23:59:59Z --name "Winter (extended)"
  promocodes promotions update 7 --starts-at none`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var u client.PromotionUpdate
			f := cmd.Flags()
			if f.Changed("name") {
				u.Name = &name
			}
			if f.Changed("active") {
				u.Active = &active
			}
			for _, b := range []struct {
				flag, v string
				clear   *bool
				dst     **time.Time
			}{{"starts-at", startsAt, &u.ClearStartsAt, &u.StartsAt}, {"expires-at", expiresAt, &u.ClearExpiresAt, &u.ExpiresAt}} {
				if !f.Changed(b.flag) {
					continue
				}
				if b.v == "none" {
					*b.clear = true
					continue
				}
				t, err := time.Parse(time.RFC3339, b.v)
				if err != nil {
					return &exitError{code: 2, msg: fmt.Sprintf("error: --%s: want an RFC 3339 time or none, got %q", b.flag, b.v)}
				}
				*b.dst = &t
			}
			c, err := p.client(cmd)
			if err != nil {
				return err
			}
			s, err := c.UpdatePromotion(cmd.Context(), args[0], u)
			if err != nil {
				return promotionsError(err)
			}
			bound := func(t *time.Time) string {
				if t == nil {
					return "-"
				}
				return t.Format(time.RFC3339)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "promotion %s %q: active %t, window %s .. %s\n", s.ID, s.Name, s.Active,
				bound(s.StartsAt), bound(s.ExpiresAt))
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "new name")
	cmd.Flags().StringVar(&startsAt, "starts-at", "", "new start (RFC 3339), or none")
	cmd.Flags().StringVar(&expiresAt, "expires-at", "", "new end (RFC 3339), or none")
	// No default shown: only a given --active (true or false) changes the flag.
	cmd.Flags().BoolVar(&active, "active", false, "switch the promotion on (--active, --active=true) or off (--active=false)")
	return cmd
}

// auditCmd lists a promotion's audit log.
func (p *promotionsCLI) auditCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "audit ID [--all]",
		Short: "List a promotion's admin changes (who, when, what), newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := p.client(cmd)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "AT\tACTOR\tACTION\tCODE\tCHANGE")
			after := ""
			for {
				page, err := c.AuditLog(cmd.Context(), args[0], after, 1000)
				if err != nil {
					return promotionsError(err)
				}
				for _, e := range page.Entries {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.At.Format(time.RFC3339), e.Actor, e.Action, e.Code, e.Detail)
				}
				if !all || page.Next == "" {
					break
				}
				after = page.Next
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "follow every page")
	return cmd
}

// cancelCmd stops a generating promotion.
func (p *promotionsCLI) cancelCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID",
		Short: "Stop a promotion that is still generating (workers stop at their next chunk); audited",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := p.client(cmd)
			if err != nil {
				return err
			}
			st, replayed, err := c.CancelPromotion(cmd.Context(), args[0])
			if err != nil {
				return cancelError(cmd.Context(), c, args[0], err)
			}
			what := "cancelled"
			if replayed {
				what = "was already cancelled"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "promotion %s %s: %s of %s codes exist\n", st.ID, what,
				humanize.Comma(st.GeneratedCount), humanize.Comma(st.CodeCount))
			return nil
		},
	}
}

// cancelError explains a refused cancel in the CLI's terms: a promotion whose
// generation ended has nothing to cancel, and the command that stops its
// codes from redeeming is `promotions update --active=false`.
func cancelError(ctx context.Context, c *client.Client, id string, err error) error {
	var p *client.ProblemError
	if !errors.As(err, &p) || p.Status != http.StatusConflict {
		return promotionsError(err)
	}
	what := "its generation has ended"
	if st, serr := c.GetPromotion(ctx, id); serr == nil {
		what = fmt.Sprintf("it is %s (%s of %s codes)", st.Status, humanize.Comma(st.GeneratedCount), humanize.Comma(st.CodeCount))
	}
	return &exitError{code: 1, msg: fmt.Sprintf("error: promotion %s has nothing to cancel: %s\n"+
		"  to stop its codes from being redeemed: promocodes promotions update %s --active=false", id, what, id)}
}

// topUpCmd adds codes to a generated promotion. Every call carries an
// Idempotency-Key (--idempotency-key, else a fresh one), and a transient
// failure is retried with the same key, so a lost answer never adds the codes
// twice; a failure prints the key to re-run with.
func (p *promotionsCLI) topUpCmd() *cobra.Command {
	var (
		n   int64
		key string
	)
	cmd := &cobra.Command{
		Use:   "topup ID --count N [--idempotency-key K]",
		Short: "Add N codes to a generated promotion (a new range, new batches; follow with promotions status --wait); audited",
		Args:  cobra.ExactArgs(1),
		Example: `  promocodes promotions topup 7 --count 100000
  promocodes promotions topup 7 --count 100000 --idempotency-key spring-restock-2   # safe to repeat`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if n < 1 {
				return &exitError{code: 2, msg: "error: --count must be at least 1"}
			}
			if key == "" {
				key = "cli-topup-" + rand.Text()
			}
			c, err := p.client(cmd)
			if err != nil {
				return err
			}
			// Three tries, 0.5 s then 1 s apart; a 4xx answer is final.
			type answer struct {
				t  client.TopUp
				st client.Status
			}
			a, err := backoff.Retry(cmd.Context(), func() (answer, error) {
				t, st, err := c.TopUpPromotion(cmd.Context(), args[0], n, key)
				if err != nil && !client.IsTransient(err) {
					return answer{}, backoff.Permanent(err)
				}
				return answer{t, st}, err
			}, backoff.WithBackOff(&backoff.ExponentialBackOff{InitialInterval: 500 * time.Millisecond, Multiplier: 2,
				MaxInterval: time.Second}), backoff.WithMaxTries(3), backoff.WithMaxElapsedTime(0))
			t, st := a.t, a.st
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "re-run with --idempotency-key %s to retry without adding the codes twice\n", key)
				return promotionsError(err)
			}
			what := fmt.Sprintf("top-up %d", t.No)
			if t.Replayed {
				what = fmt.Sprintf("top-up %d (already made with this idempotency key: nothing added)", t.No)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "promotion %s: %s of %d codes (batches %d..%d); total %d, %d generated\n",
				st.ID, what, t.CodeCount, t.FirstBatchNo, t.FirstBatchNo+t.BatchCount-1, st.CodeCount, st.GeneratedCount)
			return nil
		},
	}
	cmd.Flags().Int64Var(&n, "count", 0, "codes to add (required)")
	cmd.Flags().StringVar(&key, "idempotency-key", "", "makes the top-up safe to repeat: a repeat with the same key and count adds nothing (default: a fresh key)")
	return cmd
}

// newPurgeCmd deletes the codes of promotions that ended before a date.
func newPurgeCmd() *cobra.Command {
	var (
		before, olderThan string
		opt               promotion.PurgeOptions
	)
	cmd := &cobra.Command{
		Use:   "purge --expired-before DATE | --ended-more-than DURATION [--dry-run] [--with-redemptions]",
		Short: "Delete the codes of promotions that ended before DATE, in bounded transactions; audited",
		Long: `Deletes the codes (then reservations and per-user allowances) of every promotion whose expiresAt is
before DATE, at most --batch-rows rows per statement (its own transaction), so that redemptions of
other promotions never wait long behind it. Redemption records (and their idempotency records) are
kept unless --with-redemptions. The promotion rows stay (status and audit log remain readable); each
purge is audited as promotion.purged and published on the redemptions topic.

DATE must be at least --safety-margin (24h) in the past: a date in the future, or closer than the
margin, is refused and nothing is read or deleted. What will be purged is printed before anything
is deleted ("will purge ..."); --dry-run prints it and stops.`,
		Args: cobra.NoArgs,
		Example: `  promocodes purge --expired-before 2026-01-01 --dry-run
  promocodes purge --ended-more-than 720h --with-redemptions   # the CronJob's form`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case before != "" && olderThan != "", before == "" && olderThan == "":
				return &exitError{code: 2, msg: "error: give exactly one of --expired-before and --ended-more-than"}
			case before != "":
				t, err := time.Parse(time.DateOnly, before)
				if err != nil {
					if t, err = time.Parse(time.RFC3339, before); err != nil {
						return &exitError{code: 2, msg: fmt.Sprintf("error: --expired-before: want YYYY-MM-DD or RFC 3339, got %q", before)}
					}
				}
				opt.ExpiredBefore = t
			default:
				d, err := time.ParseDuration(olderThan)
				if err != nil || d <= 0 {
					return &exitError{code: 2, msg: fmt.Sprintf("error: --ended-more-than: want a positive duration, got %q", olderThan)}
				}
				opt.ExpiredBefore = time.Now().Add(-d)
			}
			cfg, log, err := toolConfig(cmd, "db")
			if err != nil {
				return err
			}
			st, err := app.OpenStore(cmd.Context(), cfg.DB)
			if err != nil {
				return fmt.Errorf("open %s database: %w", cfg.DB.Driver, err)
			}
			defer st.Close()
			started := time.Now()
			out := cmd.OutOrStdout()
			records := "redemption records kept"
			if opt.WithRedemptions {
				records = "redemption records too"
			}
			opt.Announce = func(plan []promotion.PurgedPromotion) {
				for _, p := range plan {
					fmt.Fprintf(out, "will purge promotion %d: %d codes, %d redemptions (%s)\n", p.ID, p.Codes, p.Redemptions,
						records)
				}
				if len(plan) == 0 {
					fmt.Fprintf(out, "nothing to purge: no promotion ended before %s\n",
						opt.ExpiredBefore.UTC().Format(time.RFC3339))
				}
			}
			res, err := promotion.Purge(cmd.Context(), st, opt, log)
			if promo.Is(err, promo.EInvalid) {
				return &exitError{code: 2, msg: "error: " + err.Error()}
			}
			verb := "purged"
			if opt.DryRun {
				verb = "would purge (dry run)"
			}
			var codes, reds int64
			for _, p := range res {
				fmt.Fprintf(out, "promotion %d: %s %d codes, %d redemptions\n", p.ID, verb, p.Codes, p.Redemptions)
				codes, reds = codes+p.Codes, reds+p.Redemptions
			}
			fmt.Fprintf(out, "%d promotions ended before %s: %s %d codes, %d redemptions in %s\n", len(res),
				opt.ExpiredBefore.UTC().Format(time.RFC3339), verb, codes, reds, time.Since(started).Round(time.Millisecond))
			return err
		},
	}
	cmd.Flags().StringVar(&before, "expired-before", "", "purge promotions whose expiresAt is before this date (YYYY-MM-DD or RFC 3339)")
	cmd.Flags().StringVar(&olderThan, "ended-more-than", "", "purge promotions that ended more than this long ago (e.g. 720h)")
	cmd.Flags().BoolVar(&opt.DryRun, "dry-run", false, "count what would be deleted; delete nothing")
	cmd.Flags().BoolVar(&opt.WithRedemptions, "with-redemptions", false, "also delete the redemption records")
	cmd.Flags().IntVar(&opt.BatchRows, "batch-rows", 10_000, "rows per delete statement (transaction)")
	cmd.Flags().DurationVar(&opt.SafetyMargin, "safety-margin", promotion.DefaultPurgeSafetyMargin,
		"refuse a DATE later than this long ago")
	toolFlags(cmd)
	return cmd
}

// deleteCmd requests a promotion's deletion.
func (p *promotionsCLI) deleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a promotion's codes in the background (switched off at once; redemption records kept); audited",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := p.client(cmd)
			if err != nil {
				return err
			}
			d, replayed, err := c.DeletePromotion(cmd.Context(), args[0])
			if err != nil {
				return promotionsError(err)
			}
			what := "deletion requested"
			if replayed {
				what = "deletion was already requested"
			}
			if d.DeletedAt != nil {
				what = "deleted at " + d.DeletedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "promotion %s: %s; %d codes left (promotions status %s follows it)\n",
				args[0], what, d.CodesLeft, args[0])
			return nil
		},
	}
}
