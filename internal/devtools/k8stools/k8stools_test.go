package k8stools

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestRequiredVersions(t *testing.T) {
	got := requiredVersions([]byte(`module x

go 1.26.0

require k8s.io/kubernetes v1.37.1

require (
	go.etcd.io/etcd/server/v3 v3.7.0 // indirect
	golang.org/x/net v0.1.0
)

replace (
	k8s.io/api => k8s.io/api v0.37.1
)
`))
	for m, v := range map[string]string{"k8s.io/kubernetes": "v1.37.1", "go.etcd.io/etcd/server/v3": "v3.7.0", "golang.org/x/net": "v0.1.0"} {
		if got[m] != v {
			t.Errorf("%s: %q, want %q", m, got[m], v)
		}
	}
	if _, ok := got["k8s.io/api"]; ok {
		t.Error("a replace line was read as a requirement")
	}
}

// TestKey: the key follows every input (go.mod, go.sum, the toolchain)
// and the tree's own module gives the versions the variant is named for.
func TestKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module x\nrequire (\n\tk8s.io/kubernetes v1.37.1\n\tgo.etcd.io/etcd/server/v3 v3.7.0\n)\n")
	write("go.sum", "a h1:x\n")
	k1, v, err := Modules[0].key(dir, "go1.26.8")
	if err != nil || v["k8s.io/kubernetes"] != "v1.37.1" || len(k1) != 16 {
		t.Fatalf("%q %v %v", k1, v, err)
	}
	if k, _, _ := Modules[0].key(dir, "go1.26.9"); k == k1 {
		t.Error("another toolchain, same key")
	}
	write("go.sum", "a h1:y\n")
	if k, _, _ := Modules[0].key(dir, "go1.26.8"); k == k1 {
		t.Error("another go.sum, same key")
	}
	write("go.mod", "module x\nrequire go.etcd.io/etcd/server/v3 v3.7.0\n")
	if _, _, err := Modules[0].key(dir, "go1.26.8"); err == nil || !strings.Contains(err.Error(), "does not require k8s.io/kubernetes") {
		t.Errorf("no kubernetes: %v", err)
	}
	os.Remove(filepath.Join(dir, "go.sum"))
	if _, _, err := Modules[0].key(dir, "go1.26.8"); err == nil {
		t.Error("no go.sum: no error")
	}

	src, err := FindSource()
	if err != nil {
		t.Fatal(err)
	}
	_, v, err = Modules[0].key(filepath.Join(src, ModuleDir), "go1.26.8")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v["k8s.io/kubernetes"], "v1.37.") {
		t.Errorf("the tools module's Kubernetes is %s; the variant is metal-k8s-1.37", v["k8s.io/kubernetes"])
	}
}

func TestLDFlags(t *testing.T) {
	ld, err := LDFlags("v1.37.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"-X k8s.io/component-base/version.gitVersion=v1.37.1", "-X k8s.io/component-base/version.gitMinor=37",
		"-X k8s.io/client-go/pkg/version.gitMajor=1", "-buildid=", "buildDate=1970-01-01T00:00:00Z"} {
		if !strings.Contains(ld, w) {
			t.Errorf("%q lacks %q", ld, w)
		}
	}
	if _, err := LDFlags("1.37"); err == nil {
		t.Error("a bad version was accepted")
	}
}

// TestEnsureReusesCache: finished builds in the cache under the current
// keys are returned without building (the go command here fails if run for
// anything but its version); an unfinished one is not taken for finished.
func TestEnsureReusesCache(t *testing.T) {
	src := t.TempDir()
	for _, m := range Modules {
		dir := filepath.Join(src, m.Dir)
		os.MkdirAll(dir, 0o755)
		var req strings.Builder
		for _, path := range m.Requires {
			fmt.Fprintf(&req, "\t%s v1.37.1\n", path)
		}
		os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\nrequire (\n"+req.String()+")\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "go.sum"), nil, 0o644)
	}
	fakeGo := filepath.Join(t.TempDir(), "go")
	os.WriteFile(fakeGo, []byte("#!/bin/sh\n[ \"$1 $2\" = \"env GOVERSION\" ] && { echo go1.26.8; exit 0; }\necho \"unexpected: $*\" >&2; exit 3\n"), 0o755)
	cache := t.TempDir()
	fill := func(manifest bool) {
		for _, m := range Modules {
			key, _, err := m.key(filepath.Join(src, m.Dir), "go1.26.8")
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(cache, key)
			os.MkdirAll(dir, 0o755)
			for _, b := range m.Binaries {
				os.WriteFile(filepath.Join(dir, b.Name), []byte("bin"), 0o755)
			}
			if manifest {
				os.WriteFile(filepath.Join(dir, manifestName), []byte(`{"key":"`+key+`","kubernetes":"v1.37.1"}`), 0o644)
			}
		}
	}
	o := Options{Source: src, CacheDir: cache, Go: fakeGo}
	// No manifests: not finished, so Ensure builds, and the fake go fails.
	fill(false)
	if _, err := Ensure(context.Background(), o); err == nil || !strings.Contains(err.Error(), "unexpected: build") {
		t.Fatalf("an unfinished build: %v", err)
	}
	fill(true)
	tl, err := Ensure(context.Background(), o)
	if err != nil || tl.Kubernetes != "v1.37.1" || len(tl.Builds) != len(Modules) {
		t.Fatalf("%+v %v", tl, err)
	}
	for _, b := range Binaries() {
		if p := tl.Path(b.Name); filepath.Base(p) != b.Name || !strings.HasPrefix(p, cache) {
			t.Errorf("%s: path %q", b.Name, p)
		}
	}
	if tl.Path("kubelet") == "" || filepath.Dir(tl.Path("kubelet")) == filepath.Dir(tl.Path("containerd")) {
		t.Errorf("each module has a folder of its own: %s, %s", tl.Path("kubelet"), tl.Path("containerd"))
	}
}

// TestBuild builds the tools module (or takes the cache's build, which
// `make test` makes first) and runs every binary: each is static and
// reports the module's version.
func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Kubernetes (about 15 minutes cold)")
	}
	src, err := FindSource()
	if err != nil {
		t.Fatal(err)
	}
	tl, err := Ensure(context.Background(), Options{Source: src, Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range Binaries() {
		args, want := []string{"--version"}, "Kubernetes "+tl.Kubernetes
		switch b.Name {
		case "etcd":
			want = "etcd Version: " + strings.TrimPrefix(tl.Etcd, "v")
		case "kubectl":
			args, want = []string{"version", "--client"}, "Client Version: "+tl.Kubernetes
		case "containerd", "containerd-shim-runc-v2":
			args, want = []string{"--version"}, tl.Containerd
			if b.Name == "containerd-shim-runc-v2" {
				args = []string{"-v"}
			}
		case "bridge", "host-local", "loopback", "portmap":
			// A CNI plugin with no CNI_COMMAND prints its version.
			args, want = nil, "CNI "+b.Name+" plugin "+tl.CNIPlugins
		}
		out, err := exec.Command(tl.Path(b.Name), args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("%s %v: %v\n%s\nwant %q", b.Name, args, err, out, want)
		}
		if f, err := elf.Open(tl.Path(b.Name)); err != nil {
			t.Error(err)
		} else {
			if p := f.Progs; len(p) > 0 {
				for _, prog := range p {
					if prog.Type == elf.PT_INTERP {
						t.Errorf("%s is dynamically linked", b.Name)
					}
				}
			}
			f.Close()
		}
	}
	for _, b := range tl.Builds {
		t.Logf("%s: %s, built in %.0f s", b.Dir, b.GoVersion, b.Seconds)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
