// Package yamlfile decodes configuration files strictly (unknown keys are
// errors) and reports problems with the file, line and field they are at.
// The policy and the run configuration both use it. A file is at most
// MaxFileSize bytes, and an error quotes at most about 200 bytes of a bad
// value (Quote): a 50 MB scalar makes a short error, not a 50 MB one.
package yamlfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/fencedhq/fenced/internal/escape"
)

// MaxFileSize is the largest policy or config file read: either is a few
// kilobytes; a megabyte is a mistake or an attack.
const MaxFileSize = 1 << 20

// maxMessage bounds an error's message; the values it quotes are cut to
// about 200 bytes (Quote) before that.
const maxMessage = 512

// Quote quotes a value for an error message: control characters escaped,
// at most about 200 bytes of it, and its length when it was cut.
func Quote(v string) string { return escape.Excerpt(v, escape.ExcerptLen) }

// ReadFile reads a file of at most MaxFileSize bytes.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, &Error{File: path, Err: fmt.Errorf("larger than %d bytes: not a fenced file", MaxFileSize)}
	}
	return data, nil
}

// Error is a problem at a place in a file.
type Error struct {
	File  string
	Line  int // 0 when unknown
	Field string
	Err   error
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	msg := fmt.Sprint(e.Err)
	if len(msg) > maxMessage {
		// a message that quotes a value in full (a check that did not use
		// Quote): keep its start, say how long it was
		msg = strings.ToValidUTF8(msg[:maxMessage], "") + fmt.Sprintf("… (message of %d bytes cut)", len(msg))
	}
	if e.Field != "" {
		field := e.Field
		if len(field) > escape.ExcerptLen || escape.Terminal(field) != field {
			field = Quote(field) // a key from the file: any length, any bytes
		}
		return fmt.Sprintf("%s: %s: %s", loc, field, msg)
	}
	return fmt.Sprintf("%s: %s", loc, msg)
}

func (e *Error) Unwrap() error { return e.Err }

var lineMsg = regexp.MustCompile(`^line (\d+): (.*)$`)

// Doc is a decoded file, kept to find the lines of fields.
type Doc struct {
	Name string
	root *yaml.Node
}

// Decode decodes data into v strictly. An empty file leaves v as it is.
func Decode(name string, data []byte, v any) (*Doc, error) {
	d := &Doc{Name: name}
	if len(data) > MaxFileSize {
		return nil, &Error{File: name, Err: fmt.Errorf("%d bytes, larger than %d: not a fenced file", len(data), MaxFileSize)}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, d.fromYAML(err)
	}
	if len(root.Content) > 0 {
		d.root = root.Content[0]
	}
	// before the strict decoder: it compares every key of a mapping with
	// every other and reports every duplicate pair, which takes minutes and
	// gigabytes for a file of a few thousand repeated keys
	if err := d.checkKeys(&root); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return nil, d.fromYAML(err)
	}
	return d, nil
}

// MaxKeys bounds the keys of one mapping: a fleet's per-host BMC entries
// fill MaxFileSize long before.
const MaxKeys = 10000

// checkKeys refuses, in one pass, a mapping with more than MaxKeys keys or
// with a key given twice (the first duplicate, as the strict decoder would
// name it). Aliases are not followed: what they point to is checked where
// it is defined.
func (d *Doc) checkKeys(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		if len(n.Content)/2 > MaxKeys {
			return &Error{File: d.Name, Line: n.Line, Err: fmt.Errorf("a mapping of %d keys, more than %d: not a fenced file", len(n.Content)/2, MaxKeys)}
		}
		seen := make(map[string]int, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			id := fmt.Sprintf("%d\x00%s", k.Kind, k.Value) // what the decoder compares
			if first, dup := seen[id]; dup {
				return &Error{File: d.Name, Line: k.Line, Err: fmt.Errorf("mapping key %s already defined at line %d", Quote(k.Value), first)}
			}
			seen[id] = k.Line
		}
	}
	for _, c := range n.Content {
		if err := d.checkKeys(c); err != nil {
			return err
		}
	}
	return nil
}

func (d *Doc) fromYAML(err error) error {
	var te *yaml.TypeError
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if m := lineMsg.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		text, _, _ := strings.Cut(m[2], " in type ") // "field x not found in type struct {…}"
		return &Error{File: d.Name, Line: n, Err: errors.New(text)}
	}
	return &Error{File: d.Name, Err: errors.New(msg)}
}

// Errorf returns an Error at a dotted field path ("storm_guard.max_fraction",
// "webhooks[1]"), with the line of the field or of its nearest parent.
func (d *Doc) Errorf(field string, format string, a ...any) error {
	return &Error{File: d.Name, Line: d.Line(field), Field: field, Err: fmt.Errorf(format, a...)}
}

// Wrap turns an error of the form "field: message" (as the packages'
// Validate methods write them) into an Error at that field.
func (d *Doc) Wrap(err error) error {
	field, rest, ok := strings.Cut(err.Error(), ": ")
	if !ok || strings.Contains(field, " ") {
		return &Error{File: d.Name, Err: err}
	}
	return &Error{File: d.Name, Line: d.Line(field), Field: field, Err: errors.New(rest)}
}

// Line finds the line of a dotted path, or of its nearest parent.
func (d *Doc) Line(path string) int {
	if d.root == nil {
		return 0
	}
	n, line := d.root, d.root.Line
	for _, key := range strings.Split(path, ".") {
		idx := -1
		if k, rest, ok := strings.Cut(key, "["); ok {
			key = k
			idx, _ = strconv.Atoi(strings.TrimSuffix(rest, "]"))
		}
		if n.Kind != yaml.MappingNode {
			break
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				line, n, found = n.Content[i].Line, n.Content[i+1], true
				break
			}
		}
		if !found {
			break
		}
		if idx >= 0 && n.Kind == yaml.SequenceNode && idx < len(n.Content) {
			n = n.Content[idx]
			line = n.Line
		}
	}
	return line
}

// Root is the file's top node (nil for an empty file). Callers may read it
// and copy parts of it; they must not change it.
func (d *Doc) Root() *yaml.Node { return d.root }

// DecodeNode decodes n — a part of a file read with Decode, or a tree built
// from parts of it — into v, and returns a Doc over n for Errorf and Line:
// lines are those of the nodes in the file. Unknown keys are the caller's
// to check (the strict decoder reads bytes, not nodes).
func DecodeNode(name string, n *yaml.Node, v any) (*Doc, error) {
	d := &Doc{Name: name, root: n}
	if err := n.Decode(v); err != nil {
		return nil, d.fromYAML(err)
	}
	return d, nil
}
