package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/clock"
)

func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func keyring(keys ...ed25519.PrivateKey) Keyring {
	var enc []string
	for _, k := range keys {
		enc = append(enc, EncodePublicKey(k.Public().(ed25519.PublicKey)))
	}
	kr, err := ParsePublicKeys(enc)
	if err != nil {
		panic(err)
	}
	return kr
}

// signed returns a log of n records signed by key, verifying against keys.
func signed(t *testing.T, n int, key ed25519.PrivateKey, keys Keyring, w *Witness) (*Log, *MemStore) {
	t.Helper()
	st := NewMemStore()
	l := New(st, clock.NewFake(time.Date(2026, 1, 15, 1, 20, 0, 0, time.UTC)))
	if err := l.Signing(NewSigner(key, "r1"), keys, w); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, err := l.Append(context.Background(), Record{HostID: "cmp-017", Action: "power_off", Outcome: OutcomeOK, FenceToken: 7}); err != nil {
			t.Fatal(err)
		}
	}
	return l, st
}

func storedRecs(t *testing.T, st *MemStore) []Record {
	t.Helper()
	raw, _ := st.Range(context.Background(), 0)
	out := make([]Record, len(raw))
	for i, b := range raw {
		if err := json.Unmarshal(b, &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func put(st *MemStore, r Record) {
	b, _ := json.Marshal(r)
	st.Tamper(r.Seq, b)
}

func TestSignedChainVerifies(t *testing.T) {
	a, b := testKey(1), testKey(2)
	l, st := signed(t, 4, a, keyring(a, b), nil)
	// a second replica with its own key appends to the same chain
	l2 := New(st, nil)
	if err := l2.Signing(NewSigner(b, "r2"), keyring(a, b), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := l2.Append(context.Background(), Record{Action: "approve", Outcome: OutcomeOK, Operator: "alice"}); err != nil {
		t.Fatal(err)
	}
	rep, err := l.Verify(context.Background())
	if err != nil || rep.Records != 5 || rep.Signed != 5 || rep.Unsigned != 0 || len(rep.Keys) != 2 || !rep.Signatures {
		t.Fatalf("%+v %v", rep, err)
	}
	for _, r := range storedRecs(t, st) {
		if r.Sig == "" || r.KeyID == "" {
			t.Fatalf("record %d unsigned: %+v", r.Seq, r)
		}
	}
}

func TestSigningRefusesAKeyTheConfigDoesNotTrust(t *testing.T) {
	l := New(NewMemStore(), nil)
	if err := l.Signing(NewSigner(testKey(1), "r1"), keyring(testKey(2)), nil); err == nil {
		t.Fatal("a signing key missing from the public keys was accepted")
	}
}

// TestAWriterWithoutTheKeyIsCaught: each way of rewriting the chain that a
// plain hash chain cannot notice, done the way someone with etcd write
// access (and no signing key) would do it.
func TestAWriterWithoutTheKeyIsCaught(t *testing.T) {
	a := testKey(1)
	ctx := context.Background()
	for name, tc := range map[string]struct {
		tamper func(*MemStore, []Record)
		want   string
	}{
		"edited and the chain recomputed": {func(st *MemStore, recs []Record) {
			prev := recs[1].Hash
			for _, r := range recs[2:] {
				if r.Seq == 2 {
					r.Outcome = OutcomeError
				}
				r.PrevHash = prev
				r.Hash = r.digest()
				prev = r.Hash
				put(st, r)
			}
			st.SetHead(recs[len(recs)-1].Seq, prev)
		}, "record 2: signature by key"},
		"edited, recomputed, signatures stripped": {func(st *MemStore, recs []Record) {
			prev := recs[1].Hash
			for _, r := range recs[2:] {
				r.Detail = "nothing happened"
				r.KeyID, r.Sig, r.PrevHash = "", "", prev
				r.Hash = r.digest()
				prev = r.Hash
				put(st, r)
			}
			st.SetHead(recs[len(recs)-1].Seq, prev)
		}, "record 2: unsigned, after signed records"},
		"whole chain rewritten unsigned": {func(st *MemStore, recs []Record) {
			prev := ""
			for _, r := range recs {
				r.KeyID, r.Sig, r.PrevHash = "", "", prev
				r.Hash = r.digest()
				prev = r.Hash
				put(st, r)
			}
			st.SetHead(recs[len(recs)-1].Seq, prev)
		}, "none of the 5 records is signed"},
		"signed with a key the deployment does not trust": {func(st *MemStore, recs []Record) {
			r := recs[4]
			r.KeyID = KeyID(testKey(9).Public().(ed25519.PublicKey))
			r.Hash = r.digest()
			r.Sig = NewSigner(testKey(9), "x").sign(recordDomain, r.Hash)
			put(st, r)
			st.SetHead(4, r.Hash)
		}, "not one of the 1 trusted keys"},
		"tail cut and the head rewritten": {func(st *MemStore, recs []Record) {
			st.Tamper(4, nil)
			st.Tamper(3, nil)
			st.SetHead(2, recs[2].Hash)
		}, "this replica saw record 4"},
		"an extra field the hash does not cover": {func(st *MemStore, recs []Record) {
			raw, _ := st.Range(ctx, 3)
			st.Tamper(3, bytes.Replace(raw[0], []byte(`{"seq":3,`), []byte(`{"seq":3,"approved_by":"carol",`), 1))
		}, `record 3: not a record: json: unknown field "approved_by"`},
		"a duplicate key (the last one wins when decoded)": {func(st *MemStore, recs []Record) {
			raw, _ := st.Range(ctx, 2)
			st.Tamper(2, bytes.Replace(raw[0], []byte(`"outcome":"ok"`), []byte(`"outcome":"error","outcome":"ok"`), 1))
		}, "record 2: stored bytes are not the record's own encoding"},
	} {
		t.Run(name, func(t *testing.T) {
			l, st := signed(t, 5, a, keyring(a), nil)
			if _, err := l.Verify(ctx); err != nil { // the witness now holds record 4
				t.Fatal(err)
			}
			tc.tamper(st, storedRecs(t, st))
			_, err := l.Verify(ctx)
			var ve *VerifyError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestTheWitnessFileOutlivesTheProcess: a replica restarted after the tail
// was cut still notices, through its witness file; without one it cannot
// (docs/audit.md says so), and a witness never moves back.
func TestTheWitnessFileOutlivesTheProcess(t *testing.T) {
	a := testKey(1)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.witness")
	w, err := NewWitness(path)
	if err != nil {
		t.Fatal(err)
	}
	_, st := signed(t, 6, a, keyring(a), w) // appending moves the witness
	recs := storedRecs(t, st)
	st.Tamper(5, nil)
	st.SetHead(4, recs[4].Hash)

	w2, err := NewWitness(path) // the restarted replica
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := w2.Get(); !ok || c.Seq != 5 || c.Hash != recs[5].Hash {
		t.Fatalf("witness file holds %+v %v, want record 5", c, ok)
	}
	l := New(st, nil)
	_ = l.Signing(nil, keyring(a), w2)
	if _, err := l.Verify(ctx); err == nil || !strings.Contains(err.Error(), "this replica saw record 5") {
		t.Fatalf("restarted replica: %v", err)
	}
	if c, _ := w2.Get(); c.Seq != 5 {
		t.Fatalf("a failed verify moved the witness to %d", c.Seq)
	}
	fresh := New(st, nil)
	_ = fresh.Signing(nil, keyring(a), nil)
	if _, err := fresh.Verify(ctx); err != nil {
		t.Fatalf("without a witness a cut tail with a matching head is not detectable, yet: %v", err)
	}
	if err := os.WriteFile(path, []byte("{\"seq\":1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewWitness(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("a bad witness file: %v", err)
	}
}

func TestUnsignedRecordsBeforeSigningBegan(t *testing.T) {
	a := testKey(1)
	ctx := context.Background()
	st := NewMemStore()
	old := New(st, nil)
	for i := 0; i < 2; i++ {
		if _, err := old.Append(ctx, Record{Action: "transition", Outcome: OutcomeOK}); err != nil {
			t.Fatal(err)
		}
	}
	l := New(st, nil)
	_ = l.Signing(NewSigner(a, "r1"), keyring(a), nil)
	if _, err := l.Append(ctx, Record{Action: "signing_key", Outcome: OutcomeOK}); err != nil {
		t.Fatal(err)
	}
	rep, err := l.Verify(ctx)
	if err != nil || rep.Unsigned != 2 || rep.Signed != 1 {
		t.Fatalf("%+v %v", rep, err)
	}
	// the unsigned prefix is covered by the first signature's link
	recs := storedRecs(t, st)
	r0 := recs[0]
	r0.Detail = "rewritten"
	r0.Hash = r0.digest()
	put(st, r0)
	r1 := recs[1]
	r1.PrevHash = r0.Hash
	r1.Hash = r1.digest()
	put(st, r1)
	if _, err := l.Verify(ctx); err == nil || !strings.Contains(err.Error(), "record 2") {
		t.Fatalf("a rewritten unsigned prefix: %v", err)
	}
}

// TestRecordSignatureKnownAnswer pins the signed message: the domain
// prefix and the record's hash, by the key whose seed is 32 bytes of 1.
func TestRecordSignatureKnownAnswer(t *testing.T) {
	s := NewSigner(testKey(1), "r1")
	if s.ID() != "34750f98bd59fcfc" {
		t.Errorf("key id %s", s.ID())
	}
	hash := strings.Repeat("ab", 32)
	got := s.sign(recordDomain, hash)
	if got != "JJgnIEQbRhdC0CdQN9uaM2oYebofIX4uE6M5knVDz24KF11JzhlwN+tm32C6t2+Rq1j+I1B0RtEg2GQE/axnBA==" {
		t.Errorf("signature %s", got)
	}
	// the documented message (docs/audit.md), checked by the standard library alone
	sig, _ := base64.StdEncoding.DecodeString(got)
	if !ed25519.Verify(s.Public(), []byte("fenced-audit-record-v1\x00"+hash), sig) {
		t.Error("the signature is not over \"fenced-audit-record-v1\\0\" + hash")
	}
}

func TestExportVerifiesOffline(t *testing.T) {
	a := testKey(1)
	ctx := context.Background()
	l, st := signed(t, 5, a, keyring(a), nil)
	var buf bytes.Buffer
	if err := l.Export(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyExport(bytes.NewReader(buf.Bytes()), "audit.jsonl", keyring(a))
	if err != nil || rep.Records != 5 || rep.Signed != 5 || rep.Witness == nil || rep.Witness.Replica != "r1" {
		t.Fatalf("%+v %v", rep, err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[5], `{"checkpoint":`) {
		t.Fatalf("export: %q", buf.String())
	}
	for name, tc := range map[string]struct{ file, want string }{
		"last record cut":    {strings.Join(append(lines[:4:4], lines[5]), ""), "names record 4, the file ends at 4 records"},
		"checkpoint cut":     {strings.Join(lines[:5], ""), "no checkpoint line"},
		"checkpoint moved":   {strings.Join(lines[:4], "") + strings.Replace(lines[5], `"seq":4`, `"seq":3`, 1), "checkpoint: signature"},
		"record edited":      {strings.Replace(buf.String(), `"outcome":"ok"`, `"outcome":"error"`, 1), "audit.jsonl:1: audit chain broken at record 0"},
		"untrusted key":      {buf.String(), "not one of the 1 trusted keys"},
		"line after the end": {buf.String() + lines[0], "a line after the checkpoint line"},
	} {
		t.Run(name, func(t *testing.T) {
			keys := keyring(a)
			if name == "untrusted key" {
				keys = keyring(testKey(2))
			}
			_, err := VerifyExport(strings.NewReader(tc.file), "audit.jsonl", keys)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	// a chain broken at export time: the trailer says so and is unsigned
	raw, _ := st.Range(ctx, 1)
	st.Tamper(1, bytes.Replace(raw[0], []byte(`"outcome":"ok"`), []byte(`"outcome":"error"`), 1))
	buf.Reset()
	if err := l.Export(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyExport(&buf, "audit.jsonl", keyring(a)); err == nil || !strings.Contains(err.Error(), "audit.jsonl:2") {
		t.Fatalf("broken export: %v", err)
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.key")
	key, err := GenerateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	back, err := LoadKey(path)
	if err != nil || !back.Equal(key) {
		t.Fatalf("%v", err)
	}
	if _, err := GenerateKey(path); err == nil {
		t.Fatal("keygen overwrote a key")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable key: %v", err)
	}
	bad := filepath.Join(dir, "bad.key")
	_ = os.WriteFile(bad, []byte("not a key"), 0o600)
	if _, err := LoadKey(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("bad key file: %v", err)
	}
	if _, err := ParsePublicKeys([]string{"AAAA"}); err == nil || !strings.Contains(err.Error(), "[0]") {
		t.Fatalf("bad public key: %v", err)
	}
}
