//go:build integration

package main

import (
	"encoding/csv"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	title := fmt.Sprintf("PostgreSQL, %s codes, %d×%d workers: pipeline vs binary-COPY ceilings",
		thousands(uint64(cfg.n)), cfg.procs, cfg.workers)
	var names []string
	var ys [][]float64
	for _, ph := range append([]phase{r.pipeline}, r.ceilings...) {
		names, ys = append(names, ph.name), append(ys, ph.windows)
	}
	xs := make([]float64, cfg.windows)
	for j := range xs {
		xs[j] = float64(cfg.n) * float64(j) / float64(cfg.windows)
	}
	if err := savePlot(filepath.Join(cfg.out, "curve.png"), title, xs, names, ys); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPlotCurveCSV redraws a curve.csv (BENCH_PLOT_CSV; first column
// rows_before, one column per series) as a PNG next to it, titled
// BENCH_PLOT_TITLE: for curves assembled from several runs.
func BenchmarkPlotCurveCSV(b *testing.B) {
	path := os.Getenv("BENCH_PLOT_CSV")
	if path == "" {
		b.Skip("set BENCH_PLOT_CSV to a curve.csv to draw")
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		b.Fatal(err)
	}
	names := recs[0][1:]
	ys := make([][]float64, len(names))
	var xs []float64
	for _, rec := range recs[1:] {
		x, _ := strconv.ParseFloat(rec[0], 64)
		xs = append(xs, x)
		for i := range names {
			y, _ := strconv.ParseFloat(rec[i+1], 64)
			ys[i] = append(ys[i], y)
		}
	}
	out := strings.TrimSuffix(path, ".csv") + ".png"
	if err := savePlot(out, os.Getenv("BENCH_PLOT_TITLE"), xs, names, ys); err != nil {
		b.Fatal(err)
	}
}

func savePlot(path, title string, xs []float64, names []string, ys [][]float64) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "rows already in the table (millions)"
	p.Y.Label.Text = "rows/s in the window"
	p.Add(plotter.NewGrid())
	colors := []color.Color{color.RGBA{R: 200, A: 255}, color.RGBA{B: 200, A: 255}, color.RGBA{G: 140, A: 255}, color.RGBA{R: 150, G: 100, A: 255}}
	for i, name := range names {
		pts := make(plotter.XYs, 0, len(xs))
		for j, x := range xs {
			if j < len(ys[i]) && ys[i][j] > 0 {
				pts = append(pts, plotter.XY{X: x / 1e6, Y: ys[i][j]})
			}
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		line.Color = colors[i%len(colors)]
		line.Width = vg.Points(1.5)
		p.Add(line)
		if name != "pipeline" && !strings.Contains(name, "pipeline") {
			name += " ceiling"
		}
		p.Legend.Add(name, line)
	}
	p.Y.Min = 0
	p.Legend.Top = true
	return p.Save(8*vg.Inch, 4.5*vg.Inch, path)
}
