package preload

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTarDir(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{}`), 0o644)
	os.WriteFile(filepath.Join(dir, "blobs", "sha256", "ab"), []byte("blob"), 0o644)
	if err := checkLayout(dir); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tarDir(&buf, dir); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		names = append(names, h.Name+"="+string(b))
	}
	if got := strings.Join(names, " "); got != `blobs/sha256/ab=blob index.json={} oci-layout={"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("archive %s", got)
	}
}

func TestCheckLayout(t *testing.T) {
	for name, content := range map[string]string{"missing": "", "not JSON": "x", "no version": "{}"} {
		dir := t.TempDir()
		if content != "" {
			os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(content), 0o644)
		}
		if err := checkLayout(dir); err == nil || !strings.Contains(err.Error(), "not an OCI image layout") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
