package yamlfile

import (
	"errors"
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
