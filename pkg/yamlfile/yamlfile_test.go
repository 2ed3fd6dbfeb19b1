package yamlfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDecodeAndLines(t *testing.T) {
	var v struct {
		A struct {
			B int `yaml:"b"`
		} `yaml:"a"`
		L []struct {
			X string `yaml:"x"`
		} `yaml:"l"`
	}
	doc, err := Decode("f.yaml", []byte("a:\n  b: 1\nl:\n  - x: one\n  - x: two\n"), &v)
	if err != nil {
		t.Fatal(err)
	}
	if doc.Line("a.b") != 2 || doc.Line("l[1]") != 5 || doc.Line("a.nope") != 1 {
		t.Fatalf("lines %d %d %d", doc.Line("a.b"), doc.Line("l[1]"), doc.Line("a.nope"))
	}
	if e := doc.Wrap(errors.New("a.b: too big")).Error(); e != "f.yaml:2: a.b: too big" {
		t.Fatal(e)
	}
	_, err = Decode("f.yaml", []byte("a:\n  c: 1\n"), &v)
	if err == nil || err.Error() != "f.yaml:2: field c not found" {
		t.Fatalf("%v", err)
	}
	_, err = Decode("f.yaml", []byte("a: [\n"), &v)
	var ye *Error
	if !errors.As(err, &ye) || !strings.HasPrefix(err.Error(), "f.yaml") {
		t.Fatalf("%v", err)
	}
}

// TestBigInputsMakeShortErrors: a file over MaxFileSize is refused by size;
// a long value or key in an error is cut to about 200 bytes.
func TestBigInputsMakeShortErrors(t *testing.T) {
	var v struct {
		A string `yaml:"a"`
	}
	huge := strings.Repeat("A", 50<<20)
	_, err := Decode("f.yaml", []byte("a: "+huge+"\n"), &v)
	if err == nil || len(err.Error()) > 200 || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("a 50 MB file: %.300v", err)
	}
	p := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(p, []byte("a: "+huge[:MaxFileSize]), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(p); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("ReadFile of %d bytes: %v", MaxFileSize+3, err)
	}
	doc, err := Decode("f.yaml", []byte("a: x\n"), &v)
	if err != nil {
		t.Fatal(err)
	}
	e := doc.Errorf("a", "unknown thing %q", huge[:100<<10]).Error()
	if len(e) > 700 || !strings.HasPrefix(e, "f.yaml:1: a: unknown thing") || !strings.Contains(e, "cut") {
		t.Fatalf("%d bytes: %.300s", len(e), e)
	}
	e = doc.Errorf("a", "unknown thing %s", Quote(huge[:100<<10])).Error()
	if len(e) > 300 || !strings.Contains(e, "(102400 bytes)") {
		t.Fatalf("%d bytes: %.300s", len(e), e)
	}
	e = doc.Errorf(huge[:100<<10]+"\x1b", "bad key").Error()
	if len(e) > 300 || strings.Contains(e, "\x1b") {
		t.Fatalf("%d bytes: %.300q", len(e), e)
	}
}
