//go:build integration

package main

import (
	"fmt"
	"image/color"
	"path/filepath"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// plotCurve draws the run's curve — rows/s per window against the rows
// already in the table, the pipeline next to each ceiling — to
// BENCH_OUT/curve.png.
func plotCurve(b *testing.B, cfg benchConfig, r runResult) {
	b.Helper()
	p := plot.New()
	p.Title.Text = fmt.Sprintf("PostgreSQL, %s codes, %d×%d workers: pipeline vs binary-COPY ceilings",
		thousands(uint64(cfg.n)), cfg.procs, cfg.workers)
	p.X.Label.Text = "rows already in the table (millions)"
	p.Y.Label.Text = "rows/s in the window"
	p.Add(plotter.NewGrid())
	colors := []color.Color{color.RGBA{R: 200, A: 255}, color.RGBA{B: 200, A: 255}, color.RGBA{G: 140, A: 255}}
	series := append([]phase{r.pipeline}, r.ceilings...)
	for i, ph := range series {
		pts := make(plotter.XYs, len(ph.windows))
		for j, w := range ph.windows {
			pts[j].X = float64(cfg.n) * float64(j) / float64(cfg.windows) / 1e6
			pts[j].Y = w
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			b.Fatal(err)
		}
		line.Color = colors[i%len(colors)]
		line.Width = vg.Points(1.5)
		p.Add(line)
		name := ph.name
		if name != "pipeline" {
			name += " ceiling"
		}
		p.Legend.Add(name, line)
	}
	p.Y.Min = 0
	p.Legend.Top = true
	if err := p.Save(8*vg.Inch, 4.5*vg.Inch, filepath.Join(cfg.out, "curve.png")); err != nil {
		b.Fatal(err)
	}
}
