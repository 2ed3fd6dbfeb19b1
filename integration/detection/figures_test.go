package detection

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// table collects one scenario's trials and prints them as Markdown.
type table struct {
	title  string
	header []string
	rows   [][]string
}

func newTable(title string, header ...string) *table { return &table{title: title, header: header} }

func (tb *table) add(cells ...string) { tb.rows = append(tb.rows, cells) }

func (tb *table) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n| %s |\n|%s\n", tb.title, strings.Join(tb.header, " | "), strings.Repeat("---|", len(tb.header)))
	for _, r := range tb.rows {
		fmt.Fprintf(&b, "| %s |\n", strings.Join(r, " | "))
	}
	return b.String()
}

// print logs the table, prints it and appends it to FENCED_DETECTION_FIGURES.
func (tb *table) print(t *testing.T) {
	if len(tb.rows) == 0 {
		return
	}
	md := tb.markdown()
	t.Log("\n" + md)
	fmt.Println("integration/detection: " + md)
	appendFigures(md + "\n")
}

// figure logs one trial's FIGURE line and appends it to FENCED_DETECTION_FIGURES.
func figure(t *testing.T, format string, args ...any) {
	line := "FIGURE " + fmt.Sprintf(format, args...)
	t.Log(line)
	fmt.Println("integration/detection: " + line)
	appendFigures(fmt.Sprintf("%s %s\n", time.Now().UTC().Format(time.RFC3339), line))
}

func appendFigures(s string) {
	path := os.Getenv("FENCED_DETECTION_FIGURES")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration/detection: %s: %v\n", path, err)
		return
	}
	defer f.Close()
	_, _ = f.WriteString(s)
}

func secs(d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "–"
	}
	return fmt.Sprintf("%s–%s (median %s)", secs(slices.Min(ds)), secs(slices.Max(ds)), secs(median(ds)))
}
