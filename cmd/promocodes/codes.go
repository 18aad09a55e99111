package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/promocodes/promocodes/pkg/app"
	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/config"
	"github.com/promocodes/promocodes/pkg/promo"
)

// newCodesCmd is `promocodes codes`: format preview and offline code checks.
// The logic lives in pkg/codes; this only maps flags and prints.
func newCodesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "codes", Short: "Code formats: preview and offline check; look a code up through the API"}
	cmd.AddCommand(newCodesPreviewCmd(), newCodesCheckCmd(), codesLookupCmd())
	return cmd
}

// formatFlags are the flags that describe a promo.Format.
type formatFlags struct {
	charset, prefix, suffix, separator string
	length, groupSize                  int
	checkChar                          bool
}

func (ff *formatFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&ff.charset, "charset", codes.PresetAlnum,
		`"alnum" (31: 2-9, A-Z without I L O), "numeric" (0-9), "alpha" (23: A-Z without I L O), or custom characters`)
	fs.IntVar(&ff.length, "length", 10, "body length in characters (prefix, suffix and check character come on top)")
	fs.StringVar(&ff.prefix, "prefix", "", "constant text before the body (canonical form: without - _ . and upper-cased)")
	fs.StringVar(&ff.suffix, "suffix", "", "constant text after the check character (canonical form as the prefix)")
	fs.StringVar(&ff.separator, "separator", "", `display separator: one of "-", "_", "." (ignored wherever a code is typed)`)
	fs.IntVar(&ff.groupSize, "group-size", 0, "insert the separator after every N characters of body + check character")
	fs.BoolVar(&ff.checkChar, "check-char", true, "append a check character (catches every typo and adjacent swap)")
}

func (ff *formatFlags) format() promo.Format {
	check := ff.checkChar
	return promo.Format{Charset: ff.charset, Length: ff.length, Prefix: ff.prefix, Suffix: ff.suffix,
		Separator: ff.separator, GroupSize: ff.groupSize, CheckChar: &check}
}

func newCodesPreviewCmd() *cobra.Command {
	var (
		ff         formatFlags
		count      int
		forCount   int64
		maxDensity float64
		secret     string
	)
	cmd := &cobra.Command{
		Use:   "preview",
		Short: "Show sample codes of a format, its code space and guess probability",
		Long: "Shows sample codes for sequence numbers 0, 1, ... of a format, in display form (what shoppers see)\n" +
			"and canonical form (what the database stores and every look-up uses: separators and spaces removed,\n" +
			"upper case), the size of its code\n" +
			"space, and with --for N the chance that one guess hits one of N issued codes, whether N fits the\n" +
			"density limit, and the shortest length that would. The key is --secret, else the environment\n" +
			"variable PROMOCODES_CODES_SECRET, else a random preview key (then the samples are not the codes\n" +
			"the system will issue).",
		Example: "  promocodes codes preview --charset alnum --length 10 --prefix WNTR- --separator - --group-size 4 --for 5000000",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			f := ff.format()
			l, err := codes.NewLayout(f)
			if err != nil {
				if cmd.Flags().Changed("for") {
					// name the length that takes --for N codes, not only the space minimum
					_, err = codes.CheckFormatFor(f, forCount, maxDensity)
				}
				return err
			}
			key := []byte(secret)
			if secret == "" {
				key = []byte(os.Getenv("PROMOCODES_CODES_SECRET"))
			}
			if len(key) == 0 {
				// --config: the samples a server with that file issues
				if file, _ := cmd.Flags().GetString("config"); file != "" {
					cfg, err := config.Load(app.Defaults(), file, nil)
					if err != nil {
						return err
					}
					key = []byte(cfg.Codes.Secret)
				}
			}
			if len(key) == 0 {
				key = make([]byte, codes.MinSecretLen)
				_, _ = rand.Read(key)
				fmt.Fprintln(errOut, "note: no secret (--secret or PROMOCODES_CODES_SECRET): using a random preview key; "+
					"these samples are not the codes promotions will get")
			}
			e, err := codes.NewWithLayout(l, key)
			if err != nil {
				return err
			}
			if count < 0 || uint64(count) > l.Space() {
				return fmt.Errorf("--count %d: must be between 0 and the space size", count)
			}
			fmt.Fprintf(out, "format:   %s\n", describeFormat(l))
			fmt.Fprintf(out, "counter:  %s\n", l.CounterName())
			fmt.Fprintf(out, "space:    %s codes (%d^%d), canonical length %d bytes\n",
				thousands(l.Space()), len(l.Charset()), f.Length, l.CodeLen())
			if count > 0 {
				fmt.Fprintln(out, "samples (display form, canonical form):")
				buf := make([]byte, 0, l.CodeLen())
				for seq := range uint64(count) {
					buf = e.AppendCode(buf[:0], seq)
					fmt.Fprintf(out, "  %s  %s\n", l.AppendDisplay(nil, buf), buf)
				}
			}
			if cmd.Flags().Changed("for") {
				printCapacity(out, l, f, forCount, maxDensity)
			}
			return nil
		},
	}
	ff.register(cmd)
	fs := cmd.Flags()
	fs.IntVar(&count, "count", 5, "number of sample codes")
	fs.Int64Var(&forCount, "for", 0, "number of codes a promotion would issue: show guess probability and capacity")
	fs.Float64Var(&maxDensity, "max-density", codes.DefaultMaxDensity, "density limit issued/space")
	fs.StringVar(&secret, "secret", "", "code secret (default: $PROMOCODES_CODES_SECRET, else codes.secret of --config, else a random preview key)")
	fs.String("config", "", "config file (YAML) whose codes.secret to use")
	return cmd
}

func printCapacity(out interface{ Write([]byte) (int, error) }, l *codes.Layout, f promo.Format, n int64, maxDensity float64) {
	if n < 1 {
		fmt.Fprintf(out, "for %d codes: nothing to say (use --for N with N ≥ 1)\n", n)
		return
	}
	p := l.GuessProbability(uint64(n))
	fmt.Fprintf(out, "for %s codes: one guess hits an issued code with probability %.3g (1 in %s)\n",
		thousands(uint64(n)), p, thousands(uint64(1/p)))
	limit := codes.SeqLimit(l.Space(), maxDensity)
	err := l.CheckCapacity(n, maxDensity)
	switch {
	case err == nil:
		fmt.Fprintf(out, "density:  fits the limit %g (this length takes up to %s codes)\n", maxDensity, thousands(limit))
	case promo.Is(err, promo.ECapacity):
		fmt.Fprintf(out, "density:  does NOT fit the limit %g (this length takes up to %s codes)\n", maxDensity, thousands(limit))
	default:
		fmt.Fprintf(out, "density:  %v\n", err)
	}
	if k := codes.ShortestLength(f, n, maxDensity); k > 0 {
		fmt.Fprintf(out, "shortest length that fits: %d\n", k)
	} else {
		fmt.Fprintln(out, "no length of this charset fits: use a larger charset or fewer codes")
	}
}

func newCodesCheckCmd() *cobra.Command {
	var ff formatFlags
	cmd := &cobra.Command{
		Use:   "check CODE",
		Short: "Check a code's syntax and check character offline",
		Long: "Checks a code against a format without a database: length, prefix and suffix, charset, check\n" +
			"character. As everywhere codes are looked up, the separator characters - _ . and spaces are ignored\n" +
			"wherever they are, and so is letter case.\n" +
			"Exit status 0: valid, the canonical form (what the database stores) is printed. 1: invalid, the\n" +
			"reason goes to stderr. 2: the format flags are invalid.",
		Example: "  promocodes codes check wntr-7kq2-m9xd-p3x --prefix WNTR- --separator - --group-size 4",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := codes.NewLayout(ff.format())
			if err != nil {
				return &exitError{code: 2, msg: "error: " + err.Error()}
			}
			c, err := l.Parse(args[0])
			if err != nil {
				var pe *promo.Error
				if errors.As(err, &pe) {
					return &exitError{code: 1, msg: pe.Message}
				}
				return &exitError{code: 1, msg: err.Error()}
			}
			fmt.Fprintln(cmd.OutOrStdout(), c)
			return nil
		},
	}
	ff.register(cmd)
	return cmd
}

func describeFormat(l *codes.Layout) string {
	f := l.Format()
	var b strings.Builder
	if len(f.Charset) == len(l.Charset()) && f.Charset == l.Charset() {
		fmt.Fprintf(&b, "custom charset %q (%d characters)", f.Charset, len(f.Charset))
	} else {
		fmt.Fprintf(&b, "%s (%d characters)", f.Charset, len(l.Charset()))
	}
	fmt.Fprintf(&b, ", length %d", f.Length)
	if f.Prefix != "" {
		fmt.Fprintf(&b, ", prefix %q", f.Prefix)
	}
	if f.Suffix != "" {
		fmt.Fprintf(&b, ", suffix %q", f.Suffix)
	}
	if f.Separator != "" {
		fmt.Fprintf(&b, ", separator %q every %d", f.Separator, f.GroupSize)
	}
	if f.HasCheckChar() {
		b.WriteString(", check character")
	} else {
		b.WriteString(", no check character")
	}
	b.WriteString("; typed codes match in any case, with - _ . and spaces ignored")
	return b.String()
}

// thousands formats n with comma separators (code spaces fit int64).
func thousands(n uint64) string { return humanize.Comma(int64(min(n, math.MaxInt64))) }
