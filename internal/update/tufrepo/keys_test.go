package tufrepo

import (
	"os"
	"path/filepath"
	"testing"
)

func TestGenerateKey(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "root")
	kp, err := GenerateKey(p)
	if err != nil {
		t.Fatal(err)
	}
	for path, mode := range map[string]os.FileMode{kp.Private: 0o600, kp.Public: 0o644} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s has mode %04o, want %04o", path, st.Mode().Perm(), mode)
		}
	}
	if kp.Public != p+".pub" {
		t.Errorf("public key at %s", kp.Public)
	}
	priv, err := LoadKey(kp.Private)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := LoadKey(kp.Public)
	if err != nil {
		t.Fatal(err)
	}
	if priv.ID != kp.ID || pub.ID != kp.ID || !priv.CanSign() || pub.CanSign() {
		t.Errorf("private %s (can sign %v), public %s (can sign %v), generated %s", priv.ID, priv.CanSign(), pub.ID, pub.CanSign(), kp.ID)
	}
	before, _ := os.ReadFile(kp.Private)
	if _, err := GenerateKey(p); err == nil {
		t.Error("GenerateKey overwrote a key")
	}
	if after, _ := os.ReadFile(kp.Private); string(after) != string(before) {
		t.Error("the refused GenerateKey changed the private key")
	}
	// Only the public half exists: still refused, and no private key left behind.
	q := filepath.Join(dir, "half")
	writeFile(t, dir, "half.pub", []byte("x"))
	if _, err := GenerateKey(q); err == nil {
		t.Error("GenerateKey overwrote a public key")
	}
	if _, err := os.Stat(q); err == nil {
		t.Error("a refused GenerateKey left a private key")
	}
}

func TestLoadKeyErrors(t *testing.T) {
	dir := t.TempDir()
	kp, err := GenerateKey(filepath.Join(dir, "k"))
	if err != nil {
		t.Fatal(err)
	}
	loose := filepath.Join(dir, "loose")
	b, _ := os.ReadFile(kp.Private)
	if err := os.WriteFile(loose, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope"), "nope: no such file"},
		{"not PEM", writeFile(t, dir, "junk", []byte("hello")), "not a PEM key"},
		{"other PEM", writeFile(t, dir, "cert", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")), `"CERTIFICATE"`},
		{"readable private key", loose, "mode 0644"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadKey(tt.path)
			wantErr(t, err, tt.want)
			wantErr(t, err, tt.path)
		})
	}
}
