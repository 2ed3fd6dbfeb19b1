package yamlfile

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Repeated keys are refused at the first repetition, in time linear in the
// file: the strict decoder alone reports every duplicate pair (quadratic; a
// few thousand repeated keys stalled the policy fuzzer for minutes).
func TestRepeatedKeysAreRefusedQuickly(t *testing.T) {
	var v struct {
		K int `yaml:"k"`
	}
	for name, data := range map[string]string{
		"9000 repeated keys":   strings.Repeat("k: 1\n", 9000),
		"repeated nested keys": "a:\n" + strings.Repeat("  b: 1\n", 9000),
	} {
		start := time.Now()
		_, err := Decode("f.yaml", []byte(data), &v)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: %s", name, d)
		}
		if err == nil || !strings.Contains(err.Error(), "already defined at line") || len(err.Error()) > 200 {
			t.Errorf("%s: %.300v", name, err)
		}
	}
	_, err := Decode("f.yaml", []byte("k: 1\nk: 2\n"), &v)
	if err == nil || err.Error() != `f.yaml:2: mapping key "k" already defined at line 1` {
		t.Errorf("a key given twice: %v", err)
	}
	var b strings.Builder
	for i := 0; i <= MaxKeys; i++ {
		fmt.Fprintf(&b, "k%d: 1\n", i)
	}
	var m map[string]int
	if _, err := Decode("f.yaml", []byte(b.String()), &m); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("a mapping of %d keys: %.300v", MaxKeys+1, err)
	}
}
