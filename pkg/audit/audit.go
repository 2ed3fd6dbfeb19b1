// Package audit is fenced's append-only, hash-chained audit log. Every record
// carries the hash of the one before it, so an edited, removed or reordered
// record breaks the chain and Verify names the first place it breaks.
// Records carry the B.6 fields (timestamp, component, request_id,
// rpc_latency_ms, cpu_steal_pct, host_id, vm_id, action, outcome) plus the
// verdict and policy version behind a decision and the leader's fencing token.
package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/fencedhq/fenced/pkg/clock"
)

// Record is one audit entry.
type Record struct {
	Seq           uint64    `json:"seq"`
	Timestamp     time.Time `json:"timestamp"`
	Component     string    `json:"component"`
	RequestID     string    `json:"request_id,omitempty"`
	RPCLatencyMs  int64     `json:"rpc_latency_ms,omitempty"`
	CPUStealPct   float64   `json:"cpu_steal_pct,omitempty"`
	HostID        string    `json:"host_id,omitempty"`
	VMID          string    `json:"vm_id,omitempty"`
	Action        string    `json:"action"`
	Outcome       string    `json:"outcome"`
	Detail        string    `json:"detail,omitempty"`
	Operator      string    `json:"operator,omitempty"`
	D             float64   `json:"d,omitempty"`
	Verdict       string    `json:"verdict,omitempty"` // the verdict's explanation behind a decision
	PolicyVersion string    `json:"policy_version,omitempty"`
	FenceToken    int64     `json:"fence_token,omitempty"`
	KeyID         string    `json:"key_id,omitempty"` // the signing replica's key (KeyID)
	Sig           string    `json:"sig,omitempty"`    // ed25519 over the record's hash
	PrevHash      string    `json:"prev_hash"`
	Hash          string    `json:"hash"`
}

// Outcomes used across fenced.
const (
	OutcomeIntent = "intent" // written before an action runs
	OutcomeOK     = "ok"
	OutcomeError  = "error"
)

// digest is the record's hash: SHA-256 over its JSON with Hash and Sig
// empty (KeyID is covered: a record cannot be moved to another key).
func (r Record) digest() string {
	r.Hash, r.Sig = "", ""
	b, _ := json.Marshal(r) // a Record always marshals
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Store keeps records durably. Append must be create-only and atomic with
// moving the head: it fails with ErrConflict when seq is already taken
// (another writer won), so the chain can never fork, and the head (last seq
// and hash) lets Verify notice records cut off the end.
type Store interface {
	Append(ctx context.Context, seq uint64, hash string, data []byte) error
	// Range returns every stored record with seq ≥ from, in seq order.
	Range(ctx context.Context, from uint64) ([][]byte, error)
	// Head returns the last appended seq and hash; ok is false for an empty log.
	Head(ctx context.Context) (seq uint64, hash string, ok bool, err error)
}

// ErrConflict is returned by a Store when seq is already taken.
var ErrConflict = errors.New("audit: sequence number already written")

// Log appends to a chain kept in a Store.
type Log struct {
	store Store
	clock clock.Clock
	mu    sync.Mutex
	next  uint64
	prev  string
	ready bool

	signer  *Signer
	keys    Keyring
	witness *Witness
}

// New returns a log over store.
func New(store Store, c clock.Clock) *Log {
	if c == nil {
		c = clock.Real{}
	}
	return &Log{store: store, clock: c}
}

// Signing makes the log sign every record it appends with s, verify
// against keys (which must hold s's public key), and keep a witness of the
// newest record it wrote or verified (w may be nil: the witness then lives
// only as long as the process). Call it before the first Append.
func (l *Log) Signing(s *Signer, keys Keyring, w *Witness) error {
	if s != nil {
		if _, ok := keys[s.ID()]; !ok {
			return fmt.Errorf("audit: the signing key %s is not among the %d public keys: a chain it signs would not verify", s.ID(), len(keys))
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.signer, l.keys = s, keys
	if w != nil {
		l.witness = w
	}
	return nil
}

// load finds the chain's head.
func (l *Log) load(ctx context.Context) error {
	seq, hash, ok, err := l.store.Head(ctx)
	if err != nil {
		return fmt.Errorf("audit: read head: %w", err)
	}
	l.next, l.prev = 0, ""
	if ok {
		l.next, l.prev = seq+1, hash
	}
	l.ready = true
	return nil
}

// Append chains r to the log and stores it. Seq, PrevHash, Hash and (when
// zero) Timestamp are set here.
func (l *Log) Append(ctx context.Context, r Record) (Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for attempt := 0; attempt < 3; attempt++ {
		if !l.ready {
			if err := l.load(ctx); err != nil {
				return Record{}, err
			}
		}
		if r.Timestamp.IsZero() {
			r.Timestamp = l.clock.Now().UTC()
		}
		if r.Component == "" {
			r.Component = "fenced"
		}
		r.Seq, r.PrevHash = l.next, l.prev
		r.KeyID, r.Sig = "", ""
		if l.signer != nil {
			r.KeyID = l.signer.id
		}
		r.Hash = r.digest()
		if l.signer != nil {
			r.Sig = l.signer.sign(recordDomain, r.Hash)
		}
		data, err := json.Marshal(r)
		if err != nil {
			return Record{}, fmt.Errorf("audit: encode: %w", err)
		}
		err = l.store.Append(ctx, r.Seq, r.Hash, data)
		if errors.Is(err, ErrConflict) {
			l.ready = false // another writer appended: reload the head and retry
			continue
		}
		if err != nil {
			return Record{}, fmt.Errorf("audit: append %d: %w", r.Seq, err)
		}
		l.next, l.prev = r.Seq+1, r.Hash
		l.witnessLocked().saw(Checkpoint{Seq: r.Seq, Hash: r.Hash, At: r.Timestamp})
		return r, nil
	}
	return Record{}, fmt.Errorf("audit: append: %w after 3 attempts", ErrConflict)
}

// Records returns every record (oldest first) that matches keep (nil: all).
func (l *Log) Records(ctx context.Context, keep func(Record) bool) ([]Record, error) {
	raw, err := l.store.Range(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("audit: read: %w", err)
	}
	var out []Record
	for i, b := range raw {
		var r Record
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("audit: record %d: %w", i, err)
		}
		if keep == nil || keep(r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// Report is what a verification found.
type Report struct {
	Records int `json:"records"`
	// Signed records; Unsigned counts the records before the first signed
	// one (written before signing was enabled; the first signature covers
	// them through its link).
	Signed   int      `json:"signed"`
	Unsigned int      `json:"unsigned_before_signing"`
	Keys     []string `json:"keys,omitempty"` // key ids that signed records
	// Signatures is false when no public keys were given: only the hash
	// chain was checked.
	Signatures bool `json:"signatures_checked"`
	// Witness is the newest record this replica wrote or verified before;
	// the chain was found to still hold it.
	Witness *Checkpoint `json:"witness,omitempty"`
}

// Verify reads the whole log and checks the chain, each record's stored
// bytes, the signatures (when the log has keys), the head and the witness.
//
// The head is read before the records, so records appended meanwhile (the
// leader keeps writing) extend a chain that must still hold the record the
// head names; a chain that ends before it was cut. A head rewritten to match
// a cut chain is caught by the witness: the newest record this replica
// wrote or verified must still be there.
func (l *Log) Verify(ctx context.Context) (Report, error) {
	rep, _, err := l.verify(ctx)
	return rep, err
}

// verify is Verify, also returning the stored records it read (Export
// writes the same bytes it checked).
func (l *Log) verify(ctx context.Context) (Report, [][]byte, error) {
	// the witness and the head first: both only move forward
	l.mu.Lock()
	keys, w := l.keys, l.witnessLocked()
	l.mu.Unlock()
	seen, saw := w.Get()
	seq, hash, ok, err := l.store.Head(ctx)
	if err != nil {
		return Report{}, nil, fmt.Errorf("audit: read head: %w", err)
	}
	raw, err := l.store.Range(ctx, 0)
	if err != nil {
		return Report{}, nil, fmt.Errorf("audit: read: %w", err)
	}
	recs, rep, err := check(raw, keys)
	if err != nil {
		return rep, raw, err
	}
	if !ok && len(recs) > 0 {
		// the first record may have been appended since: read the head again
		if seq, hash, ok, err = l.store.Head(ctx); err != nil {
			return rep, raw, fmt.Errorf("audit: read head: %w", err)
		}
		if !ok {
			return rep, raw, &VerifyError{Seq: 0, Reason: "records without a head"}
		}
	}
	if ok && (uint64(len(recs)) <= seq || recs[seq].Hash != hash) {
		return rep, raw, &VerifyError{Seq: seq, Reason: "the head names a record that is missing or different: records removed from the end"}
	}
	if c := seen; saw {
		if uint64(len(recs)) <= c.Seq || recs[c.Seq].Hash != c.Hash {
			return rep, raw, &VerifyError{Seq: c.Seq, Reason: fmt.Sprintf("this replica saw record %d (hash %.12s…, %s) and the chain of %d records no longer holds it: records cut from the end and the head rewritten",
				c.Seq, c.Hash, c.At.UTC().Format(time.RFC3339), len(recs))}
		}
		rep.Witness = &c
	}
	if n := len(recs); n > 0 {
		last := recs[n-1]
		w.saw(Checkpoint{Seq: last.Seq, Hash: last.Hash, At: last.Timestamp})
	}
	return rep, raw, nil
}

// check decodes stored records and verifies them: canonical bytes, the
// chain, and (with keys) the signatures.
func check(raw [][]byte, keys Keyring) ([]Record, Report, error) {
	recs := make([]Record, 0, len(raw))
	for i, b := range raw {
		r, err := decodeStored(b)
		if err != nil {
			return nil, Report{Records: len(raw)}, &VerifyError{Seq: uint64(i), Reason: err.Error()}
		}
		recs = append(recs, r)
	}
	rep, err := verifyRecords(recs, keys)
	return recs, rep, err
}

// decodeStored decodes one stored record strictly: the stored bytes must be
// exactly the record's own encoding, so a field the hash does not cover
// (an extra key, a duplicate key whose last value wins, a re-encoding)
// cannot hide in it.
func decodeStored(b []byte) (Record, error) {
	var r Record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("not a record: %v", err)
	}
	if dec.More() {
		return r, errors.New("more than one JSON value stored")
	}
	canon, _ := json.Marshal(r)
	if !bytes.Equal(canon, b) {
		return r, errors.New("stored bytes are not the record's own encoding: an extra field, a duplicate key or a rewrite the hash does not cover")
	}
	return r, nil
}

// VerifyError says where the chain breaks.
type VerifyError struct {
	Seq    uint64
	Reason string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("audit chain broken at record %d: %s", e.Seq, e.Reason)
}

// Verify checks a whole chain, oldest first: sequence numbers without gaps,
// each record's hash, and each link to the previous record. Signatures are
// not checked (VerifySigned does).
func Verify(recs []Record) error {
	_, err := verifyRecords(recs, nil)
	return err
}

// VerifySigned checks the chain as Verify does, and every signature against
// keys: once a record is signed every later one must be, and each must
// verify with a trusted key. A chain with records and no signature fails.
func VerifySigned(recs []Record, keys Keyring) (Report, error) {
	if len(keys) == 0 {
		return Report{Records: len(recs)}, errors.New("audit: no public keys to check signatures with")
	}
	return verifyRecords(recs, keys)
}

func verifyRecords(recs []Record, keys Keyring) (Report, error) {
	rep := Report{Records: len(recs), Signatures: len(keys) > 0}
	prev := ""
	used := map[string]bool{}
	for i, r := range recs {
		if r.Seq != uint64(i) {
			return rep, &VerifyError{Seq: uint64(i), Reason: fmt.Sprintf("record %d found where %d belongs: records removed or reordered", r.Seq, i)}
		}
		if r.PrevHash != prev {
			return rep, &VerifyError{Seq: r.Seq, Reason: "does not link to the record before it"}
		}
		if d := r.digest(); d != r.Hash {
			return rep, &VerifyError{Seq: r.Seq, Reason: "content does not match its hash: edited"}
		}
		prev = r.Hash
		if r.Sig == "" && r.KeyID == "" {
			if rep.Signed > 0 && rep.Signatures {
				return rep, &VerifyError{Seq: r.Seq, Reason: "unsigned, after signed records: written (or rewritten) without a signing key"}
			}
			if rep.Signed == 0 {
				rep.Unsigned++
			}
			continue
		}
		if rep.Signatures {
			if err := keys.verify(r.KeyID, r.Sig, recordDomain, r.Hash); err != nil {
				return rep, &VerifyError{Seq: r.Seq, Reason: err.Error() + ": edited and re-hashed, or signed by a key this deployment does not trust"}
			}
		}
		rep.Signed++
		used[r.KeyID] = true
	}
	for k := range used {
		rep.Keys = append(rep.Keys, k)
	}
	slices.Sort(rep.Keys)
	if rep.Signatures && len(recs) > 0 && rep.Signed == 0 {
		return rep, &VerifyError{Seq: 0, Reason: fmt.Sprintf("none of the %d records is signed: the chain was written (or rewritten) without a signing key", len(recs))}
	}
	return rep, nil
}

// WriteJSONL writes records as JSON Lines.
func WriteJSONL(w io.Writer, recs []Record) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ReadJSONL reads records written by WriteJSONL; errors name the line.
func ReadJSONL(r io.Reader, name string) ([]Record, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	var out []Record
	for n := 1; sc.Scan(); n++ {
		var rec Record
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			return nil, fmt.Errorf("audit: %s:%d: %w", name, n, err)
		}
		out = append(out, rec)
	}
	return out, sc.Err()
}

// MemStore is an in-memory Store for tests and the dev lab.
type MemStore struct {
	mu       sync.Mutex
	recs     map[uint64][]byte
	head     uint64
	headHash string
	hasHead  bool
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{recs: map[uint64][]byte{}} }

// Append stores data at seq unless taken, and moves the head.
func (m *MemStore) Append(_ context.Context, seq uint64, hash string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.recs[seq]; ok || (m.hasHead && seq != m.head+1) || (!m.hasHead && seq != 0) {
		return ErrConflict
	}
	m.recs[seq] = append([]byte(nil), data...)
	m.head, m.headHash, m.hasHead = seq, hash, true
	return nil
}

// Range returns every record from seq on, in order.
func (m *MemStore) Range(_ context.Context, from uint64) ([][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]uint64, 0, len(m.recs))
	for k := range m.recs {
		if k >= from {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = m.recs[k]
	}
	return out, nil
}

// Head returns the last appended record's seq and hash.
func (m *MemStore) Head(context.Context) (uint64, string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.head, m.headHash, m.hasHead, nil
}

// SetHead moves the head behind the log's back, as a writer cutting the
// tail would: tests use it to show that Verify notices.
func (m *MemStore) SetHead(seq uint64, hash string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.head, m.headHash, m.hasHead = seq, hash, true
}

// Tamper replaces (or, with nil, deletes) a stored record behind the log's
// back: tests use it to show that Verify notices.
func (m *MemStore) Tamper(seq uint64, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if data == nil {
		delete(m.recs, seq)
		return
	}
	m.recs[seq] = data
}
