package osrelease

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "os-release")
	os.WriteFile(p, []byte("# comment\nNAME=Gantry\nPRETTY_NAME=\"Gantry OS 1.0.0 (metal-dev)\"\nVARIANT_ID=metal-dev\nVERSION_ID=1.0.0\nBUILD_ID='abc123'\n"), 0o644)
	r, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	want := Release{PrettyName: "Gantry OS 1.0.0 (metal-dev)", VariantID: "metal-dev", VersionID: "1.0.0", BuildID: "abc123", Arch: Arch()}
	if r != want {
		t.Fatalf("Read = %+v, want %+v", r, want)
	}
	os.WriteFile(p, []byte("garbage line\n"), 0o644)
	if _, err := Read(p); err == nil {
		t.Fatal("malformed file accepted")
	}
}
