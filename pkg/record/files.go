package record

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Defaults of Files.
const (
	DefaultMaxFileBytes = 64 << 20
	DefaultMaxFiles     = 8
	DefaultQueue        = 64
)

// File names in a record directory: FilePrefix, the UTC time of the file's
// first tick (so that names sort in time order), FileSuffix.
const (
	FilePrefix = "fenced-"
	FileSuffix = ".jsonl"
	fileTime   = "20060102T150405.000000000Z"
)

// Options configure Files.
type Options struct {
	// Dir holds rotating files: a file is closed before it would grow past
	// MaxFileBytes, and the oldest are removed so that at most MaxFiles
	// remain. Each file replays on its own.
	Dir          string
	MaxFileBytes int64 // default 64 MiB
	MaxFiles     int   // default 8
	// File is one file, created afresh and never rotated (for `fenced run
	// --dev --record`); Dir and File exclude each other.
	File string
	// Queue is how many observations may wait for the writer; the engine
	// never waits on the disk: when the queue is full an observation is
	// dropped and counted (default 64).
	Queue int
	Log   zerolog.Logger
}

// Files is a Sink that writes observations to files on its own goroutine.
type Files struct {
	o       Options
	ch      chan Observation
	done    chan struct{}
	mu      sync.Mutex // guards closed and sends on ch
	closed  bool
	dropped atomic.Int64

	// writer goroutine only
	enc     *Encoder
	buf     bytes.Buffer
	f       *os.File
	size    int64
	failing bool
}

// Open checks the options, creates the directory (or the file) and starts
// the writer.
func Open(o Options) (*Files, error) {
	switch {
	case (o.Dir == "") == (o.File == ""):
		return nil, errors.New("record: give a directory or a file")
	case o.MaxFileBytes < 0 || o.MaxFiles < 0 || o.Queue < 0:
		return nil, errors.New("record: limits must not be negative")
	}
	if o.MaxFileBytes == 0 {
		o.MaxFileBytes = DefaultMaxFileBytes
	}
	if o.MaxFiles == 0 {
		o.MaxFiles = DefaultMaxFiles
	}
	if o.Queue == 0 {
		o.Queue = DefaultQueue
	}
	r := &Files{o: o, ch: make(chan Observation, o.Queue), done: make(chan struct{})}
	r.enc = NewEncoder(&r.buf)
	if o.Dir != "" {
		if err := os.MkdirAll(o.Dir, 0o750); err != nil {
			return nil, fmt.Errorf("record: %w", err)
		}
	} else {
		f, err := os.OpenFile(o.File, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
		if err != nil {
			return nil, fmt.Errorf("record: %w", err)
		}
		r.f = f
	}
	go r.run()
	return r, nil
}

// Tick queues an observation; it never blocks.
func (r *Files) Tick(o Observation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	select {
	case r.ch <- o:
	default:
		if r.dropped.Add(1) == 1 {
			r.o.Log.Warn().Time("t", o.At).Msg("record: the writer is behind; observations dropped (the trace has gaps)")
		}
	}
}

// Dropped is how many observations were dropped because the writer was
// behind.
func (r *Files) Dropped() int64 { return r.dropped.Load() }

// Close writes what is queued and closes the file.
func (r *Files) Close() error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.ch)
	}
	r.mu.Unlock()
	<-r.done
	if r.f != nil {
		err := r.f.Close()
		r.f = nil
		if err != nil {
			return fmt.Errorf("record: %w", err)
		}
	}
	return nil
}

func (r *Files) run() {
	defer close(r.done)
	for o := range r.ch {
		if err := r.write(o); err != nil {
			if !r.failing {
				r.o.Log.Error().Err(err).Msg("record: cannot write the trace; retrying with a new file at the next tick")
			}
			r.failing = true
			continue
		}
		r.failing = false
	}
}

func (r *Files) encode(o Observation) {
	r.buf.Reset()
	r.enc.Encode(o)
	_ = r.enc.Flush() // into a bytes.Buffer: never fails
}

func (r *Files) write(o Observation) error {
	r.encode(o)
	if r.o.Dir != "" && (r.f == nil || r.size > 0 && r.size+int64(r.buf.Len()) > r.o.MaxFileBytes) {
		if err := r.rotate(o.At); err != nil {
			return err
		}
		// a new file starts with every host's state
		r.enc.Reset()
		r.encode(o)
	}
	if r.f == nil {
		return errors.New("record: no file")
	}
	n, err := r.f.Write(r.buf.Bytes())
	r.size += int64(n)
	if err != nil {
		if r.o.Dir != "" {
			r.f.Close()
			r.f = nil // the next tick starts a new file
		}
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

// rotate closes the current file, opens one named after at, and removes
// the oldest files beyond MaxFiles.
func (r *Files) rotate(at time.Time) error {
	if r.f != nil {
		err := r.f.Close()
		r.f = nil
		if err != nil {
			return fmt.Errorf("record: %w", err)
		}
	}
	base := filepath.Join(r.o.Dir, FilePrefix+at.UTC().Format(fileTime))
	var f *os.File
	var err error
	for i := 0; i < 100; i++ {
		name := base + FileSuffix
		if i > 0 {
			name = fmt.Sprintf("%s-%02d%s", base, i, FileSuffix)
		}
		f, err = os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	r.f, r.size = f, 0
	return r.prune(filepath.Base(f.Name()))
}

// prune removes the oldest record files beyond MaxFiles (never current).
func (r *Files) prune(current string) error {
	names, err := List(r.o.Dir)
	if err != nil {
		return err
	}
	for len(names) > r.o.MaxFiles {
		if filepath.Base(names[0]) == current {
			break
		}
		if err := os.Remove(names[0]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("record: %w", err)
		}
		names = names[1:]
	}
	return nil
}

// List returns the record files in dir, oldest first.
func List(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	var out []string
	for _, e := range ents {
		if n := e.Name(); e.Type().IsRegular() && strings.HasPrefix(n, FilePrefix) && strings.HasSuffix(n, FileSuffix) {
			out = append(out, filepath.Join(dir, n))
		}
	}
	sort.Strings(out)
	return out, nil
}
