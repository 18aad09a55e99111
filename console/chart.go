package console

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/promocodes/promocodes/pkg/client"
	"github.com/promocodes/promocodes/pkg/promo"
)

// barChart renders the series as an SVG bar chart on the server (no chart
// library, no JavaScript): one bar per bucket, rolled-back part shaded, at
// most the newest 72 buckets.
func barChart(s client.Stats) template.HTML {
	pts := s.Series
	if len(pts) > 72 {
		pts = pts[len(pts)-72:]
	}
	if len(pts) == 0 {
		return template.HTML(`<p class="muted" id="chart-empty">No redemptions yet.</p>`)
	}
	const (
		w, h           = 720.0, 200.0
		left, bottom   = 40.0, 24.0
		top, rightPad  = 10.0, 8.0
		plotW, plotH   = w - left - rightPad, h - top - bottom
		labelEveryBars = 6
	)
	var peak int64 = 1
	for _, p := range pts {
		peak = max(peak, p.Redemptions)
	}
	slot := plotW / float64(len(pts))
	barW := min(max(slot*0.7, 1), 36)
	layout := "15:04"
	if s.Bucket == promo.BucketDay {
		layout = "Jan 2"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="chart" class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="redemptions per %s">`, w, h, s.Bucket)
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" class="axis"/>`, left, top+plotH, left+plotW, top+plotH)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="tick" text-anchor="end">%d</text>`, left-4, top+8, peak)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="tick" text-anchor="end">0</text>`, left-4, top+plotH)
	every := max(1, len(pts)/labelEveryBars)
	for i, p := range pts {
		x := left + float64(i)*slot + (slot-barW)/2
		bh := plotH * float64(p.Redemptions) / float64(peak)
		rb := plotH * float64(p.RolledBack) / float64(peak)
		label := p.At.UTC().Format(layout)
		fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" data-at="%s" data-n="%d"><title>%s UTC: %d redeemed, %d rolled back</title></rect>`,
			x, top+plotH-bh, barW, bh, p.At.UTC().Format(time.RFC3339), p.Redemptions, template.HTMLEscapeString(p.At.UTC().Format("2006-01-02 15:04")), p.Redemptions, p.RolledBack)
		if rb > 0 {
			fmt.Fprintf(&b, `<rect class="rb" x="%.1f" y="%.1f" width="%.1f" height="%.1f"/>`, x, top+plotH-rb, barW, rb)
		}
		if i%every == 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="tick" text-anchor="middle">%s</text>`, x+barW/2, h-6, template.HTMLEscapeString(label))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every value above is a number or escaped
}
