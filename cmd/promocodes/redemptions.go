package main

import (
	"encoding/csv"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/promocodes/promocodes/pkg/client"
)

// apiFlags are the flags of every command that talks to the API.
func apiFlags(cmd *cobra.Command, p *promotionsCLI, what string) {
	defURL := os.Getenv("PROMOCODES_CLIENT_URL")
	if defURL == "" {
		defURL = promotionsDefaultURL
	}
	cmd.PersistentFlags().StringVar(&p.apiURL, "api-url", defURL, "Promotion API base URL (env PROMOCODES_CLIENT_URL)")
	cmd.PersistentFlags().StringVar(&p.token, "token", "", what+" bearer token (env PROMOCODES_CLIENT_TOKEN)")
}

func newRedemptionsCmd() *cobra.Command {
	p := &promotionsCLI{}
	cmd := &cobra.Command{
		Use:   "redemptions",
		Short: "Operator client: read a promotion's redemption audit trail",
	}
	apiFlags(cmd, p, "admin")
	cmd.AddCommand(redemptionsListCmd(p))
	return cmd
}

func redemptionsListCmd(p *promotionsCLI) *cobra.Command {
	var (
		q     client.RedemptionQuery
		all   bool
		asCSV bool
	)
	cmd := &cobra.Command{
		Use:   "list --promotion ID [--user U] [--limit N | --all] [--csv]",
		Short: "List redemptions, newest first (a page, all pages, or the whole trail as CSV)",
		Args:  cobra.NoArgs,
		Example: `  promocodes redemptions list --promotion 1
  promocodes redemptions list --promotion 1 --user alice --all
  promocodes redemptions list --promotion 1 --csv > redemptions.csv`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if q.PromotionID == "" {
				return &exitError{code: 2, msg: "error: --promotion is required"}
			}
			c, err := p.client(cmd)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asCSV {
				n, err := c.ExportRedemptions(cmd.Context(), q, out)
				if err != nil {
					return promotionsError(err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%d redemptions\n", n)
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCODE\tUSER\tORDER\tREDEEMED AT\tUSES LEFT\tROLLED BACK")
			total := 0
			for {
				page, err := c.ListRedemptions(cmd.Context(), q)
				if err != nil {
					return promotionsError(err)
				}
				for _, r := range page.Redemptions {
					rolled := ""
					if r.RolledBackAt != nil {
						rolled = r.RolledBackAt.Format(time.RFC3339)
						if r.RollbackReason != "" {
							rolled += " (" + r.RollbackReason + ")"
						}
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.ID, r.Code, r.UserID, r.OrderID,
						r.RedeemedAt.Format(time.RFC3339), r.UsesLeft, rolled)
				}
				total += len(page.Redemptions)
				if !all || page.Next == "" {
					if page.Next != "" {
						defer fmt.Fprintf(cmd.ErrOrStderr(), "more: --after %s (or --all)\n", page.Next)
					}
					break
				}
				q.After = page.Next
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d redemptions\n", total)
			return nil
		},
	}
	cmd.Flags().StringVar(&q.PromotionID, "promotion", "", "promotion id (required)")
	cmd.Flags().StringVar(&q.UserID, "user", "", "only this user's redemptions")
	cmd.Flags().StringVar(&q.After, "after", "", "cursor: the last id of the previous page")
	cmd.Flags().IntVar(&q.Limit, "limit", 100, "page size (1..1000)")
	cmd.Flags().BoolVar(&all, "all", false, "follow every page")
	cmd.Flags().BoolVar(&asCSV, "csv", false, "stream the whole trail as CSV (ignores --after/--limit)")
	return cmd
}

// codesLookupCmd validates a code through the API without using it.
func codesLookupCmd() *cobra.Command {
	p := &promotionsCLI{}
	var (
		user   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "lookup CODE [--user U]",
		Short: "Validate a code through the API without using it (status, uses left, window)",
		Args:  cobra.ExactArgs(1),
		Example: `  promocodes codes lookup MEGADETH21
  promocodes codes lookup "wntr-7kq2 m9xd-p3x" --user alice`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := p.client(cmd)
			if err != nil {
				return err
			}
			v, err := c.LookupCode(cmd.Context(), args[0], user)
			if err != nil {
				return promotionsError(err) // main prints "error: ..." and exits 1
			}
			out := cmd.OutOrStdout()
			if asJSON {
				fmt.Fprintln(out, string(v.Raw))
				return nil
			}
			window := func(t *time.Time) string {
				if t == nil {
					return "-"
				}
				return t.Format(time.RFC3339)
			}
			w := csv.NewWriter(out)
			w.Comma = '\t'
			rows := [][]string{
				{"code", v.Code}, {"promotion", v.Promotion.ID + " (" + v.Promotion.Name + ")"}, {"status", string(v.Status)},
				{"uses left", strconv.Itoa(v.UsesLeft) + " of " + strconv.Itoa(v.MaxUsage)},
				{"window", window(v.StartsAt) + " .. " + window(v.ExpiresAt)},
			}
			if v.UserUsesLeft != nil {
				rows = append(rows, []string{"user uses left", strconv.Itoa(*v.UserUsesLeft) + " of " + strconv.Itoa(v.PerUserLimit)})
			}
			_ = w.WriteAll(rows)
			if v.Status != "redeemable" {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	apiFlags(cmd, p, "redeem or admin")
	cmd.Flags().StringVar(&user, "user", "", "also show this user's remaining uses")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON as is")
	return cmd
}

// codesIssueCmd hands out codes of a generated promotion to a customer.
func codesIssueCmd() *cobra.Command {
	p := &promotionsCLI{}
	var (
		promotion, user, key string
		count                int
	)
	cmd := &cobra.Command{
		Use:   "issue --promotion ID --user U [--count N] [--idempotency-key K]",
		Short: "Issue the next unassigned codes of a generated promotion to a customer (bound to them)",
		Args:  cobra.NoArgs,
		Example: `  promocodes codes issue --promotion 1 --user alice
  promocodes codes issue --promotion 1 --user bob --count 3 --idempotency-key signup-bob`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if promotion == "" || user == "" {
				return &exitError{code: 2, msg: "error: --promotion and --user are required"}
			}
			c, err := p.client(cmd)
			if err != nil {
				return err
			}
			iss, replayed, err := c.IssueCodes(cmd.Context(), promotion, user, count, key)
			if err != nil {
				return promotionsError(err)
			}
			for _, code := range iss.Codes {
				fmt.Fprintln(cmd.OutOrStdout(), code)
			}
			note := ""
			if replayed {
				note = " (replayed: issued before with this key)"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d codes of promotion %s issued to %s%s\n", len(iss.Codes), iss.PromotionID,
				iss.UserID, note)
			return nil
		},
	}
	apiFlags(cmd, p, "redeem or admin")
	cmd.Flags().StringVar(&promotion, "promotion", "", "promotion id (a generated promotion)")
	cmd.Flags().StringVar(&user, "user", "", "the customer the codes are bound to")
	cmd.Flags().IntVar(&count, "count", 1, "how many codes (1..100)")
	cmd.Flags().StringVar(&key, "idempotency-key", "", "Idempotency-Key: a retry answers the same codes")
	return cmd
}

// codesOfUserCmd lists the codes issued to a customer.
func codesOfUserCmd() *cobra.Command {
	p := &promotionsCLI{}
	cmd := &cobra.Command{
		Use:     "of-user USER",
		Short:   "List the codes issued to a customer, newest first, with their state",
		Args:    cobra.ExactArgs(1),
		Example: `  promocodes codes of-user alice`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := p.client(cmd)
			if err != nil {
				return err
			}
			cs, err := c.UserCodes(cmd.Context(), args[0])
			if err != nil {
				return promotionsError(err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CODE\tPROMOTION\tISSUED AT\tUSED\tUSES LEFT\tSTATUS")
			for _, u := range cs {
				fmt.Fprintf(tw, "%s\t%s (%s)\t%s\t%d\t%d\t%s\n", u.Code, u.PromotionID, u.PromotionName,
					u.IssuedAt.Format(time.RFC3339), u.Used, u.UsesLeft, u.Status)
			}
			return tw.Flush()
		},
	}
	apiFlags(cmd, p, "redeem or admin")
	return cmd
}
