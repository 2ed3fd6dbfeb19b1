package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// Signatures make the chain resist a writer without the key. A hash chain
// alone does not: whoever can write the store can edit a record and
// recompute every hash after it. Each replica signs every record it appends
// with its own ed25519 key (kept in a file, never in etcd); Verify checks
// each signature against the public keys of the deployment's config, and a
// signed Checkpoint (seq, hash, time) lets an export or a replica's witness
// prove how far the chain reached, so a cut tail is noticed even when the
// head was rewritten to match.

// Domain-separation prefixes: a record signature can never pass as a
// checkpoint signature or the other way round.
const (
	recordDomain     = "fenced-audit-record-v1\x00"
	checkpointDomain = "fenced-audit-checkpoint-v1\x00"
)

// Signer signs records with one replica's private key.
type Signer struct {
	key     ed25519.PrivateKey
	id      string
	replica string
}

// NewSigner returns a signer for key, used by the named replica (the name
// goes into the checkpoints it signs).
func NewSigner(key ed25519.PrivateKey, replica string) *Signer {
	return &Signer{key: key, id: KeyID(key.Public().(ed25519.PublicKey)), replica: replica}
}

// ID is the signer's key id (KeyID of its public key).
func (s *Signer) ID() string { return s.id }

// Public returns the signer's public key.
func (s *Signer) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

func (s *Signer) sign(domain, msg string) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(s.key, []byte(domain+msg)))
}

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Keyring holds the public keys a chain may be signed with, by key id.
type Keyring map[string]ed25519.PublicKey

// ParsePublicKeys decodes base64 ed25519 public keys (32 bytes each, as
// `fenced audit keygen` prints them). Errors name the key's index.
func ParsePublicKeys(keys []string) (Keyring, error) {
	kr := Keyring{}
	for i, k := range keys {
		b, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("[%d]: not a base64 ed25519 public key (32 bytes): %s", i, quote(k))
		}
		kr[KeyID(b)] = ed25519.PublicKey(b)
	}
	return kr, nil
}

// EncodePublicKey is the form ParsePublicKeys reads.
func EncodePublicKey(pub ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(pub) }

// verify checks a signature made by key id over domain+msg.
func (k Keyring) verify(id, sig, domain, msg string) error {
	pub, ok := k[id]
	if !ok {
		return fmt.Errorf("signed by key %s, which is not one of the %d trusted keys", quote(id), len(k))
	}
	b, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || !ed25519.Verify(pub, []byte(domain+msg), b) {
		return fmt.Errorf("signature by key %s does not verify", id)
	}
	return nil
}

// quote shows at most 64 bytes of an untrusted value.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}

// GenerateKey makes a new private key and writes it to path as PEM
// (PKCS#8, as `openssl genpkey -algorithm ed25519` writes), mode 0600. It
// never overwrites a file.
func GenerateKey(path string) (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return nil, err
	}
	return key, f.Close()
}

// LoadKey reads a PEM PKCS#8 ed25519 private key. A key file that group or
// others may read is refused, as ssh refuses one.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %04o lets others read the signing key: chmod 600 %s", path, st.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: not a PEM \"PRIVATE KEY\" (make one with: fenced audit keygen --out %s)", path, path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: a %T key, want ed25519", path, k)
	}
	return key, nil
}

// Checkpoint is a signed statement that the chain reached record Seq, whose
// hash is Hash, at time At. An export ends with one; a replica keeps the
// newest it wrote or verified as its witness.
type Checkpoint struct {
	Seq     uint64    `json:"seq"`
	Hash    string    `json:"hash"`
	At      time.Time `json:"at"`
	Replica string    `json:"replica,omitempty"`
	KeyID   string    `json:"key_id,omitempty"`
	Sig     string    `json:"sig,omitempty"`
}

func (c Checkpoint) message() string {
	return fmt.Sprintf("%d\x00%s\x00%s\x00%s", c.Seq, c.Hash, c.At.UTC().Format(time.RFC3339Nano), c.Replica)
}

// SignCheckpoint returns c signed by s (unsigned when s is nil).
func (s *Signer) SignCheckpoint(c Checkpoint) Checkpoint {
	if s == nil {
		return c
	}
	c.Replica = s.replica
	c.KeyID, c.Sig = s.id, s.sign(checkpointDomain, c.message())
	return c
}

// VerifyCheckpoint checks c's signature.
func (k Keyring) VerifyCheckpoint(c Checkpoint) error {
	if c.Sig == "" {
		return errors.New("the checkpoint is not signed")
	}
	return k.verify(c.KeyID, c.Sig, checkpointDomain, c.message())
}
