package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Witness remembers the newest record a replica wrote or verified, so that
// Verify notices a chain cut behind it even when the head was rewritten to
// match. With a path it survives restarts (a small JSON file beside the
// replica, outside etcd).
type Witness struct {
	path string
	mu   sync.Mutex
	cp   Checkpoint
	ok   bool
	err  error // the last save's error
}

// NewWitness loads the witness file at path ("" keeps it in memory only);
// a missing file is an empty witness.
func NewWitness(path string) (*Witness, error) {
	w := &Witness{path: path}
	if path == "" {
		return w, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return w, nil
	}
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w.cp); err != nil || w.cp.Hash == "" {
		return nil, fmt.Errorf("%s: not an audit witness (%v): move it away to start a new one", path, err)
	}
	w.ok = true
	return w, nil
}

// Get returns the newest record seen.
func (w *Witness) Get() (Checkpoint, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cp, w.ok
}

// Err is the last failure to save the witness file.
func (w *Witness) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// saw moves the witness forward to c (never back).
func (w *Witness) saw(c Checkpoint) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ok && c.Seq <= w.cp.Seq {
		return
	}
	w.cp, w.ok = c, true
	if w.path == "" {
		return
	}
	b, _ := json.Marshal(c)
	tmp := w.path + ".tmp"
	err := os.WriteFile(tmp, append(b, '\n'), 0o600)
	if err == nil {
		err = os.Rename(tmp, w.path)
	}
	w.err = err
}

// witnessLocked returns the log's witness, making an in-memory one on first
// use. l.mu is held.
func (l *Log) witnessLocked() *Witness {
	if l.witness == nil {
		l.witness = &Witness{}
	}
	return l.witness
}

// exportTrailer is the last line of an export.
type exportTrailer struct {
	Checkpoint *Checkpoint `json:"checkpoint"`
	// Broken is the live verification's error when the chain did not verify
	// at export time; the checkpoint is then unsigned.
	Broken string `json:"broken,omitempty"`
}

// Export writes the whole chain as JSON Lines, each record exactly as
// stored, then a checkpoint line naming the last record, signed by this
// replica when the live chain verified (Verify) at export time. The file
// verifies offline with VerifyExport: the records, their signatures, and
// (through the checkpoint) that nothing was cut from its end.
func (l *Log) Export(ctx context.Context, w io.Writer) error {
	_, raw, verr := l.verify(ctx)
	if raw == nil && verr != nil {
		return verr // nothing read
	}
	bw := bufio.NewWriter(w)
	var last Record
	for _, b := range raw {
		if err := json.Unmarshal(b, &last); err != nil {
			verr = errors.Join(verr, fmt.Errorf("audit: a stored record is not JSON: %w", err))
		}
		bw.Write(b)
		bw.WriteByte('\n')
	}
	cp := Checkpoint{Seq: last.Seq, Hash: last.Hash, At: l.clock.Now().UTC()}
	t := exportTrailer{Checkpoint: &cp}
	if verr != nil {
		t.Broken = verr.Error()
	} else {
		l.mu.Lock()
		s := l.signer
		l.mu.Unlock()
		signed := s.SignCheckpoint(cp)
		t.Checkpoint = &signed
	}
	b, _ := json.Marshal(t)
	bw.Write(b)
	bw.WriteByte('\n')
	return bw.Flush()
}

// VerifyExport checks a file written by Export, offline: every record's
// bytes, the chain, every signature against keys, and the trailing
// checkpoint (signed, naming the file's last record). Errors name the file
// and line.
func VerifyExport(r io.Reader, name string, keys Keyring) (Report, error) {
	if len(keys) == 0 {
		return Report{}, errors.New("audit: no public keys to check signatures with")
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	var raw [][]byte
	var trailer *exportTrailer
	n := 0
	for sc.Scan() {
		n++
		line := append([]byte(nil), sc.Bytes()...)
		if trailer != nil {
			return Report{}, fmt.Errorf("%s:%d: a line after the checkpoint line", name, n)
		}
		if bytes.HasPrefix(line, []byte(`{"checkpoint":`)) {
			trailer = &exportTrailer{}
			dec := json.NewDecoder(bytes.NewReader(line))
			dec.DisallowUnknownFields()
			if err := dec.Decode(trailer); err != nil || trailer.Checkpoint == nil {
				return Report{}, fmt.Errorf("%s:%d: not a checkpoint line: %v", name, n, err)
			}
			continue
		}
		raw = append(raw, line)
	}
	if err := sc.Err(); err != nil {
		return Report{}, fmt.Errorf("%s: %w", name, err)
	}
	recs, rep, err := check(raw, keys)
	if err != nil {
		var ve *VerifyError
		if errors.As(err, &ve) {
			return rep, fmt.Errorf("%s:%d: %w", name, ve.Seq+1, err)
		}
		return rep, fmt.Errorf("%s: %w", name, err)
	}
	if trailer == nil {
		return rep, fmt.Errorf("%s: no checkpoint line at the end: the file was cut, or is not an export (fenced audit export)", name)
	}
	if trailer.Broken != "" {
		return rep, fmt.Errorf("%s: the chain did not verify when it was exported: %s", name, trailer.Broken)
	}
	cp := *trailer.Checkpoint
	if err := keys.VerifyCheckpoint(cp); err != nil {
		return rep, fmt.Errorf("%s:%d: checkpoint: %w", name, n, err)
	}
	if len(recs) == 0 && cp.Hash == "" {
		return rep, nil // an empty chain
	}
	if len(recs) == 0 || recs[len(recs)-1].Seq != cp.Seq || recs[len(recs)-1].Hash != cp.Hash {
		return rep, fmt.Errorf("%s: the checkpoint (by %s at %s) names record %d, the file ends at %d records: records cut from the end or added after export",
			name, cp.Replica, cp.At.Format("2006-01-02T15:04:05Z07:00"), cp.Seq, len(recs))
	}
	rep.Witness = &cp
	return rep, nil
}
