package simulate

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/trace"
)

// BenchmarkFleetDay replays 100 hosts for 2 hours at 10 s (648,000 sample
// lines); scale the per-line cost to estimate bigger fleets. See docs/simulate.md.
func BenchmarkFleetTrace(b *testing.B) {
	var buf bytes.Buffer
	if err := trace.Generate(&buf, trace.Scenario{Kind: "fleet", Hosts: 100, Start: trace.IncidentDate, Duration: 2 * time.Hour, Step: 10 * time.Second, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	lines := bytes.Count(data, []byte("\n"))
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		if _, err := Run(context.Background(), trace.NewReader(bytes.NewReader(data), "bench"), Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(lines), "ns/line")
}
