package escape

import (
	"strings"
	"testing"
)

func TestTerminal(t *testing.T) {
	for in, want := range map[string]string{
		"cmp-017":                        "cmp-017",
		"VMs down, INC-4711 (été)":       "VMs down, INC-4711 (été)",
		"x\n2026-12-02 approve ok carol": `x\n2026-12-02 approve ok carol`,
		"a\rb":                           `a\rb`,
		"\x1b[2Jgone":                    `\x1b[2Jgone`,
		"tab\there":                      `tab\there`,
		"c1\u0085x":                      `c1\u0085x`,
		"bidi\u202eevil":                 `bidi\u202eevil`,
		"isolate\u2066x":                 `isolate\u2066x`,
		`back\slash`:                     `back\\slash`,
		"del\x7f":                        `del\x7f`,
		"bad\xffutf8":                    `bad\xffutf8`,
	} {
		got := Terminal(in)
		if got != want {
			t.Errorf("Terminal(%q) = %q, want %q", in, got, want)
		}
		if strings.ContainsAny(got, "\n\r\x1b\t") {
			t.Errorf("Terminal(%q) keeps a control character: %q", in, got)
		}
	}
}

func TestExcerpt(t *testing.T) {
	if got := Excerpt("short\n", 200); got != `"short\n"` {
		t.Fatal(got)
	}
	big := strings.Repeat("é", 30<<20) // 60 MB of two-byte runes
	got := Excerpt(big, 201)
	if len(got) > 260 || !strings.HasSuffix(got, "… (62914560 bytes)") || !strings.HasPrefix(got, `"éé`) {
		t.Fatalf("%d bytes: %.300s", len(got), got)
	}
}
