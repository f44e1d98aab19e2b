package storage

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newAES(t *testing.T, keyFile string) Transformer {
	t.Helper()
	tr, err := NewAESGCM(keyFile, []string{"/registry/secrets/"})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestSecretsAreEncryptedAtRest: a secret created through the Store is ciphertext in etcd
// (read with a raw etcd client), plaintext through the Store's reads and watches, and
// other resources stay as they were written.
func TestSecretsAreEncryptedAtRest(t *testing.T) {
	e := startEtcd(t)
	ctx := ctxT(t)
	s := newStore(t, EtcdConfig{Endpoints: e.Endpoints(), Transformer: newAES(t, filepath.Join(t.TempDir(), "enc.key"))})
	w, _, err := s.Watch(ctx, "/registry/", 0)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "/registry/secrets/default/db"
	mustCreate(t, s, secret, `{"data":{"password":"hunter2-plaintext"}}`)
	mustCreate(t, s, "/registry/configmaps/default/cm", `{"data":{"x":"visible"}}`)

	raw := rawClient(t, e.Endpoints())
	resp, err := raw.Get(ctx, secret)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("raw get: %v", err)
	}
	stored := resp.Kvs[0].Value
	if bytes.Contains(stored, []byte("hunter2")) || !bytes.HasPrefix(stored, []byte("k8s:enc:aesgcm:v1:berth:")) {
		t.Fatalf("stored secret is not encrypted: %q", stored)
	}
	resp, _ = raw.Get(ctx, "/registry/configmaps/default/cm")
	if !bytes.Contains(resp.Kvs[0].Value, []byte("visible")) {
		t.Fatalf("configmap should be stored as written: %q", resp.Kvs[0].Value)
	}

	kv, err := s.Get(ctx, secret)
	if err != nil || !strings.Contains(string(kv.Value), "hunter2-plaintext") {
		t.Fatalf("get through the store: %q, %v", kv.Value, err)
	}
	l, err := s.List(ctx, "/registry/secrets/", ListOptions{})
	if err != nil || len(l.Items) != 1 || !strings.Contains(string(l.Items[0].Value), "hunter2") {
		t.Fatalf("list through the store: %+v, %v", l, err)
	}
	if ev := next(t, w); !strings.Contains(string(ev.KV.Value), "hunter2") {
		t.Fatalf("watch event: %s", fmtEvent(ev))
	}
	gone, err := s.Delete(ctx, secret, 0)
	if err != nil || !strings.Contains(string(gone.Value), "hunter2") {
		t.Fatalf("delete returns the decrypted last value: %q, %v", gone.Value, err)
	}
}

// TestEncryptionKeyFile: the key is made once (32 bytes, 0600) and reused, so values
// written before a restart decrypt after it; another key cannot read them.
func TestEncryptionKeyFile(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "sub", "enc.key")
	a := newAES(t, keyFile)
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Fatalf("key file: %v, %v", fi, err)
	}
	sealed, err := a.ToStorage("/registry/secrets/ns/s", []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := a.ToStorage("/registry/secrets/ns/s", []byte("payload"))
	if bytes.Equal(sealed, again) {
		t.Fatal("two encryptions of one value are equal: the nonce is not random")
	}
	if plain, err := newAES(t, keyFile).FromStorage("/registry/secrets/ns/s", sealed); err != nil || string(plain) != "payload" {
		t.Fatalf("reloaded key: %q, %v", plain, err)
	}
	other := newAES(t, filepath.Join(t.TempDir(), "other.key"))
	_, err = other.FromStorage("/registry/secrets/ns/s", sealed)
	wantErr(t, err, ErrDecrypt)

	if err := os.WriteFile(keyFile+".bad", []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewAESGCM(keyFile+".bad", nil); err == nil {
		t.Fatal("a key file of the wrong size was accepted")
	}
}

// TestEncryptionEdges: values are bound to their key, old plaintext values read through,
// and keys outside the prefixes are not encrypted.
func TestEncryptionEdges(t *testing.T) {
	tr := newAES(t, filepath.Join(t.TempDir(), "enc.key"))
	sealed, _ := tr.ToStorage("/registry/secrets/ns/a", []byte("payload"))
	_, err := tr.FromStorage("/registry/secrets/ns/b", sealed)
	wantErr(t, err, ErrDecrypt)

	_, err = tr.FromStorage("/registry/secrets/ns/a", sealed[:len(sealed)-1])
	wantErr(t, err, ErrDecrypt)

	if plain, err := tr.FromStorage("/registry/secrets/ns/old", []byte(`{"old":"plaintext"}`)); err != nil || string(plain) != `{"old":"plaintext"}` {
		t.Fatalf("old plaintext value: %q, %v", plain, err)
	}
	if out, _ := tr.ToStorage("/registry/configmaps/ns/a", []byte("clear")); string(out) != "clear" {
		t.Fatalf("configmap was transformed: %q", out)
	}
	_, err = tr.FromStorage("/registry/secrets/ns/a", []byte("k8s:enc:kms:v2:other:xxxx"))
	wantErr(t, err, ErrDecrypt)
}
