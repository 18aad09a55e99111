package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/promocodes/promocodes/pkg/app"
	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/config"
	"github.com/promocodes/promocodes/pkg/promo"
)

// newCodesCmd is `promocodes codes`: format preview and offline code checks.
// The logic lives in pkg/codes; this only maps flags and prints.
func newCodesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "codes", Short: "Code formats: preview and offline check; look a code up through the API"}
	cmd.AddCommand(newCodesPreviewCmd(), newCodesCheckCmd(), codesLookupCmd(), codesRevokeCmd(), codesIssueCmd(),
		codesOfUserCmd())
	return cmd
}

// formatFlags are the flags that describe a promo.Format.
type formatFlags struct {
	style, charset, prefix, suffix, separator   string
	length, groupSize, serialDigits, tailLength int
	checkChar                                   bool
	flags                                       *pflag.FlagSet
}

// formatFlagNames are the flags register adds.
var formatFlagNames = []string{"style", "charset", "length", "prefix", "suffix", "separator", "group-size", "check-char",
	"serial-digits", "tail-length"}

func (ff *formatFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	ff.flags = fs
	fs.StringVar(&ff.style, "style", promo.StyleRandom, `"random": length characters of the charset; "serial": `+
		`a visible serial number and a keyed check tail (SPRING-000123-UJW9W2)`)
	fs.StringVar(&ff.charset, "charset", codes.PresetAlnum,
		`"alnum" (31: 2-9, A-Z without I L O), "numeric" (0-9), "alpha" (23: A-Z without I L O), or custom characters `+
			`(style serial: the tail's)`)
	fs.IntVar(&ff.length, "length", 10, "body length in characters (prefix, suffix and check character come on top; style random)")
	fs.StringVar(&ff.prefix, "prefix", "", "constant text before the body (canonical form: without - _ . and upper-cased)")
	fs.StringVar(&ff.suffix, "suffix", "", "constant text after the check character (canonical form as the prefix)")
	fs.StringVar(&ff.separator, "separator", "", `display separator: one of "-", "_", "." (ignored wherever a code is `+
		`typed; style serial: between the serial and the tail)`)
	fs.IntVar(&ff.groupSize, "group-size", 0, "insert the separator after every N characters of body + check character (style random)")
	fs.BoolVar(&ff.checkChar, "check-char", true, "append a check character (catches every typo and adjacent swap)")
	fs.IntVar(&ff.serialDigits, "serial-digits", 6, "style serial: digits of the zero-padded serial number")
	fs.IntVar(&ff.tailLength, "tail-length", 5, "style serial: characters of the keyed tail; a guess at a known serial "+
		"hits 1 in |charset|^N")
}

// format is the Format the flags describe. Each style takes only its own
// fields: the other style's defaults are left out, and one given explicitly
// is passed on, so that the format's validation names it.
func (ff *formatFlags) format() promo.Format {
	check := ff.checkChar
	f := promo.Format{Style: ff.style, Charset: ff.charset, Length: ff.length, Prefix: ff.prefix, Suffix: ff.suffix,
		Separator: ff.separator, GroupSize: ff.groupSize, CheckChar: &check}
	if f.Style == promo.StyleRandom {
		f.Style = ""
	}
	changed := func(name string) bool { return ff.flags != nil && ff.flags.Changed(name) }
	if f.IsSerial() {
		f.SerialDigits, f.TailLength = ff.serialDigits, ff.tailLength
		if !changed("length") {
			f.Length = 0
		}
	} else {
		if changed("serial-digits") {
			f.SerialDigits = ff.serialDigits
		}
		if changed("tail-length") {
			f.TailLength = ff.tailLength
		}
	}
	return f
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
		Example: "  promocodes codes preview --charset alnum --length 10 --prefix WNTR- --separator - --group-size 4 --for 5000000\n" +
			"  promocodes codes preview --style serial --serial-digits 6 --tail-length 5 --prefix SPRING- --separator - --for 100000",
		Args: cobra.NoArgs,
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
			key, err := codesKey(cmd, secret)
			if err != nil {
				return err
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
			if l.IsSerial() {
				fmt.Fprintf(out, "serials:  %s (%d digits), tails: %s (%d^%d), canonical length %d bytes\n",
					thousands(l.Space()), l.SerialDigits(), thousands(l.TailSpace()), len(l.Charset()), f.TailLength, l.CodeLen())
			} else {
				fmt.Fprintf(out, "space:    %s codes (%d^%d), canonical length %d bytes\n",
					thousands(l.Space()), len(l.Charset()), f.Length, l.CodeLen())
			}
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

// codesKey is the code key of --secret, else $PROMOCODES_CODES_SECRET, else
// codes.secret of --config (the key a server with that file uses), else
// none.
func codesKey(cmd *cobra.Command, secret string) ([]byte, error) {
	if secret != "" {
		return []byte(secret), nil
	}
	if env := os.Getenv("PROMOCODES_CODES_SECRET"); env != "" {
		return []byte(env), nil
	}
	if file, _ := cmd.Flags().GetString("config"); file != "" {
		cfg, err := config.Load(app.Defaults(), file, nil)
		if err != nil {
			return nil, err
		}
		return []byte(cfg.Codes.Secret), nil
	}
	return nil, nil
}

func printCapacity(out interface{ Write([]byte) (int, error) }, l *codes.Layout, f promo.Format, n int64, maxDensity float64) {
	if n < 1 {
		fmt.Fprintf(out, "for %d codes: nothing to say (use --for N with N ≥ 1)\n", n)
		return
	}
	p := l.GuessProbability(uint64(n))
	if l.IsSerial() {
		printSerialCapacity(out, l, f, n, p, maxDensity)
		return
	}
	fmt.Fprintf(out, "for %s codes: one guess hits an issued code with probability %.3g (1 in %s)\n",
		thousands(uint64(n)), p, thousands(uint64(1/p)))
	limit := l.SeqLimit(maxDensity)
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

// printSerialCapacity is printCapacity for a serial format: the tail sets
// the guess probability, the digits the count.
func printSerialCapacity(out io.Writer, l *codes.Layout, f promo.Format, n int64, p, maxDensity float64) {
	fmt.Fprintf(out, "for %s codes: one guess at a known serial hits with probability %.3g (1 in %s), "+
		"whatever the count: the tail alone is secret\n", thousands(uint64(n)), p, thousands(l.TailSpace()))
	err := l.CheckCapacity(n, maxDensity)
	switch {
	case err == nil:
		fmt.Fprintf(out, "capacity: fits the limit %g (%d digits number up to %s codes)\n", maxDensity,
			l.SerialDigits(), thousands(l.Space()))
	case promo.Is(err, promo.ECapacity):
		fmt.Fprintf(out, "capacity: does NOT fit: %v\n", err)
	default:
		fmt.Fprintf(out, "capacity: %v\n", err)
	}
	if t := codes.ShortestTail(f, maxDensity); t > 0 {
		fmt.Fprintf(out, "shortest tail length that fits: %d\n", t)
	} else {
		fmt.Fprintln(out, "no tail length of this charset fits: use a larger charset")
	}
	if d := codes.FewestSerialDigits(n); d > 0 {
		fmt.Fprintf(out, "fewest serial digits for %s codes: %d\n", thousands(uint64(n)), d)
	}
}

func newCodesCheckCmd() *cobra.Command {
	var (
		ff     formatFlags
		secret string
	)
	cmd := &cobra.Command{
		Use:   "check CODE",
		Short: "Check a code's syntax and check character offline",
		Long: "Checks a code against a format without a database: length, prefix and suffix, charset, check\n" +
			"character. As everywhere codes are looked up, the separator characters - _ . and spaces are ignored\n" +
			"wherever they are, and so is letter case.\n" +
			"Exit status 0: valid, the canonical form (what the database stores) is printed. 1: invalid, the\n" +
			"reason goes to stderr. 2: the format flags are invalid.\n" +
			"A serial code's tail is checked too when the code secret is given (--secret, else\n" +
			"$PROMOCODES_CODES_SECRET, else codes.secret of --config): without it only the check character can be.",
		Example: "  promocodes codes check wntr-7kq2-m9xd-p3x --prefix WNTR- --separator - --group-size 4\n" +
			"  promocodes codes check spring-000123-ujw9w2 --style serial --prefix SPRING- --secret \"$PROMOCODES_CODES_SECRET\"",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := codes.NewLayout(ff.format())
			if err != nil {
				return &exitError{code: 2, msg: "error: " + err.Error()}
			}
			c, err := l.Parse(args[0])
			if err == nil && l.IsSerial() {
				var key []byte
				if key, err = codesKey(cmd, secret); err != nil {
					return err
				}
				if len(key) > 0 {
					var e *codes.Engine
					if e, err = codes.NewWithLayout(l, key); err == nil {
						_, err = e.Decode(c)
					}
				}
			}
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
	cmd.Flags().StringVar(&secret, "secret", "", "code secret: a serial code's tail is verified with it")
	cmd.Flags().String("config", "", "config file (YAML) whose codes.secret to use")
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
	if l.IsSerial() {
		fmt.Fprintf(&b, ", serial of %d digits, tail of %d", l.SerialDigits(), f.TailLength)
	} else {
		fmt.Fprintf(&b, ", length %d", f.Length)
	}
	if f.Prefix != "" {
		fmt.Fprintf(&b, ", prefix %q", f.Prefix)
	}
	if f.Suffix != "" {
		fmt.Fprintf(&b, ", suffix %q", f.Suffix)
	}
	switch {
	case f.Separator != "" && l.IsSerial():
		fmt.Fprintf(&b, ", separator %q between serial and tail", f.Separator)
	case f.Separator != "":
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
