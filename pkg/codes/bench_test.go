package codes

import (
	"testing"

	"github.com/promocodes/promocodes/pkg/promo"
)

var benchSecret = []byte("0123456789abcdef0123456789abcdef-bench-only")

func benchEngine(b *testing.B) *Engine {
	b.Helper()
	e, err := New(promo.Format{Charset: PresetAlnum, Length: 10, Prefix: "WNTR-"}, benchSecret)
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkAppendCode derives one canonical code per op: permutation with
// cycle-walking, render, check character (alnum, length 10, prefix WNTR-).
func BenchmarkAppendCode(b *testing.B) {
	e := benchEngine(b)
	buf := make([]byte, 0, e.Layout().CodeLen())
	b.ReportAllocs()
	cpu0 := processCPU()
	seq := uint64(0)
	for b.Loop() {
		buf = e.AppendCode(buf[:0], seq)
		seq++
	}
	reportRates(b, cpu0)
}

func BenchmarkDecode(b *testing.B) {
	e := benchEngine(b)
	codes := make([]string, 1024)
	for i := range codes {
		codes[i], _ = e.Code(uint64(i) * 7919)
	}
	b.ReportAllocs()
	cpu0 := processCPU()
	i := 0
	for b.Loop() {
		if _, err := e.Decode(codes[i&1023]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportRates(b, cpu0)
}

func BenchmarkParse(b *testing.B) {
	e := benchEngine(b)
	c, _ := e.Code(12345)
	in := e.Layout().Display(c)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Layout().Parse(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendCodes is AppendCode's work in chunks of 1024 codes through
// the two-lane AppendCodes (how the generator builds a chunk); one op is one
// code.
func BenchmarkAppendCodes(b *testing.B) {
	e := benchEngine(b)
	const chunk = 1024
	buf := make([]byte, 0, chunk*e.Layout().CodeLen())
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	seq := uint64(0)
	for i := 0; i < b.N; i += chunk {
		buf = e.AppendCodes(buf[:0], seq, min(chunk, b.N-i))
		seq += chunk
	}
	reportRates(b, cpu0)
}

// reportRates reports codes/s by wall clock and cpu-codes/s by the CPU time
// the process got (they differ when other processes share the cores).
func reportRates(b *testing.B, cpu0 float64) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "codes/s")
	if cpu := processCPU() - cpu0; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu, "cpu-codes/s")
	}
}
