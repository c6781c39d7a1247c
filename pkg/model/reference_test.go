package model

import (
	"bytes"
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/settings.md from the model")

// TestSettingsReferenceUpToDate fails when docs/settings.md no longer matches
// the model; `make docs` (go test ./model -run SettingsReference -update)
// regenerates it.
func TestSettingsReferenceUpToDate(t *testing.T) {
	var b bytes.Buffer
	if err := WriteReference(&b); err != nil {
		t.Fatal(err)
	}
	const path = "../../docs/settings.md"
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b.Bytes()) {
		t.Fatal("docs/settings.md is out of date with the model: run `make docs`")
	}
	for _, want := range []string{"`settings.kernel.sysctl.<SysctlKey>`", "`settings.host-containers.<Identifier>.source`", "| UpdateSeed |"} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("reference lacks %s", want)
		}
	}
}
