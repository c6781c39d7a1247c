package imagebuild

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// aptRoot is a private apt configuration: the host's sources (copied),
// private lists, archives and an empty (or stub) dpkg status, so that apt
// computes a closure from nothing and installs nothing on the host.
type aptRoot struct {
	dir, arch, sourcesDir string
}

// newAptRoot prepares <cache>/apt/<key>, where key hashes the architecture
// and the sources, so lists are reused between builds with the same sources.
// sourcesDir is the host's apt folder (/etc/apt).
func newAptRoot(cacheDir, arch, sourcesDir string) (*aptRoot, error) {
	type src struct{ name, data string }
	var srcs []src
	if data, err := os.ReadFile(filepath.Join(sourcesDir, "sources.list")); err == nil {
		srcs = append(srcs, src{"sources.list", string(data)})
	}
	ents, _ := os.ReadDir(filepath.Join(sourcesDir, "sources.list.d"))
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, ".list") || strings.HasSuffix(n, ".sources") {
			data, err := os.ReadFile(filepath.Join(sourcesDir, "sources.list.d", n))
			if err != nil {
				return nil, fmt.Errorf("apt sources: %w", err)
			}
			srcs = append(srcs, src{filepath.Join("sources.list.d", n), string(data)})
		}
	}
	if len(srcs) == 0 {
		return nil, fmt.Errorf("apt sources: none in %s (sources.list, sources.list.d/*.list|*.sources)", sourcesDir)
	}
	h := sha256.New()
	fmt.Fprintf(h, "arch %s\n", arch)
	for _, s := range srcs {
		fmt.Fprintf(h, "%s %d\n%s", s.name, len(s.data), s.data)
	}
	a := &aptRoot{dir: filepath.Join(cacheDir, "apt", hex.EncodeToString(h.Sum(nil))[:16]), arch: arch, sourcesDir: sourcesDir}
	for _, d := range []string{"etc/sources.list.d", "etc/preferences.d", "state/lists/partial", "cache/archives/partial", "log"} {
		if err := os.MkdirAll(filepath.Join(a.dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("apt root: %w", err)
		}
	}
	for _, s := range srcs {
		if err := os.WriteFile(filepath.Join(a.dir, "etc", s.name), []byte(s.data), 0o644); err != nil {
			return nil, fmt.Errorf("apt root: %w", err)
		}
	}
	if err := a.writeStatus(nil); err != nil {
		return nil, err
	}
	return a, nil
}

// options are the -o settings that point apt at the private root.
func (a *aptRoot) options() []string {
	o := map[string]string{
		"Dir::Etc::SourceList":       filepath.Join(a.dir, "etc/sources.list"),
		"Dir::Etc::SourceParts":      filepath.Join(a.dir, "etc/sources.list.d"),
		"Dir::Etc::Preferences":      filepath.Join(a.dir, "etc/preferences"),
		"Dir::Etc::PreferencesParts": filepath.Join(a.dir, "etc/preferences.d"),
		"Dir::Etc::Trusted":          filepath.Join(a.sourcesDir, "trusted.gpg"),
		"Dir::Etc::TrustedParts":     filepath.Join(a.sourcesDir, "trusted.gpg.d"),
		"Dir::State":                 filepath.Join(a.dir, "state"),
		"Dir::State::status":         filepath.Join(a.dir, "status"),
		"Dir::Cache":                 filepath.Join(a.dir, "cache"),
		"Dir::Log":                   filepath.Join(a.dir, "log"),
		"Debug::NoLocking":           "1",
		"APT::Architecture":          a.arch,
		"APT::Architectures":         a.arch,
		"APT::Install-Recommends":    "false",
		"APT::Install-Suggests":      "false",
		"Acquire::Languages":         "none",
	}
	if os.Getuid() == 0 {
		// apt would drop to _apt, which cannot write the private lists.
		o["APT::Sandbox::User"] = "root"
	}
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, "-o", k+"="+o[k])
	}
	return args
}

// cmd is an apt-get or apt-cache command in the private root.
func (a *aptRoot) cmd(prog string, args ...string) command {
	return command{
		name: prog,
		args: append(append(a.options(), "-q"), args...),
		env:  []string{"DEBIAN_FRONTEND=noninteractive", "LC_ALL=C"},
	}
}

// update refreshes the private package lists.
func (a *aptRoot) update(ctx context.Context) error {
	if _, err := a.cmd("apt-get", "update").run(ctx); err != nil {
		return fmt.Errorf("apt-get update (private root %s): %w", a.dir, err)
	}
	return nil
}

// writeStatus writes the dpkg status apt resolves against: empty, plus one
// stub per excluded package (its candidate's name, version, architecture
// and provides, without dependencies), so that apt treats it as present.
func (a *aptRoot) writeStatus(stubs []byte) error {
	if err := os.WriteFile(filepath.Join(a.dir, "status"), stubs, 0o644); err != nil {
		return fmt.Errorf("apt root: status: %w", err)
	}
	return nil
}

// excludeStubs builds the status stubs of the excluded packages from their
// candidates in the lists.
func (a *aptRoot) excludeStubs(ctx context.Context, exclude []string) ([]byte, error) {
	if len(exclude) == 0 {
		return nil, nil
	}
	if err := a.writeStatus(nil); err != nil {
		return nil, err
	}
	out, err := a.cmd("apt-cache", append([]string{"show", "--no-all-versions"}, exclude...)...).run(ctx)
	if err != nil {
		return nil, fmt.Errorf("packages.exclude: %w", err)
	}
	keep := map[string]bool{"Package": true, "Version": true, "Architecture": true, "Multi-Arch": true, "Provides": true}
	var b bytes.Buffer
	found := map[string]bool{}
	for _, stanza := range strings.Split(string(out), "\n\n") {
		fields := parseControl(stanza)
		name := fields["Package"]
		if name == "" || found[name] {
			continue
		}
		found[name] = true
		for _, line := range strings.Split(stanza, "\n") {
			k, _, ok := strings.Cut(line, ":")
			if ok && keep[k] {
				b.WriteString(line + "\n")
			}
		}
		b.WriteString("Status: install ok installed\n\n")
	}
	for _, p := range exclude {
		if !found[p] {
			return nil, fmt.Errorf("packages.exclude: %s is not a package in the archive", p)
		}
	}
	return b.Bytes(), nil
}

// parseControl reads the single-line fields of a control stanza.
func parseControl(s string) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// closure asks apt for the packages installing request needs from an empty
// system (Recommends off), as name → version.
func (a *aptRoot) closure(ctx context.Context, request []string) (map[string]string, error) {
	out, err := a.cmd("apt-get", append([]string{"install", "-s", "-y"}, request...)...).run(ctx)
	if err != nil {
		return nil, fmt.Errorf("resolve the package closure: %w", err)
	}
	pkgs := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "Inst" {
			continue
		}
		name, _, _ := strings.Cut(f[1], ":")
		pkgs[name] = strings.TrimPrefix(f[2], "(")
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("resolve the package closure: apt installs nothing for %s", strings.Join(request, " "))
	}
	return pkgs, nil
}

// indexHashes returns the SHA-256 the package lists give for each
// name=version (the lists are signed, so these pin the .debs).
func (a *aptRoot) indexHashes(ctx context.Context, pkgs map[string]string) (map[string]string, error) {
	specs := make([]string, 0, len(pkgs))
	for _, n := range sortedKeys(pkgs) {
		specs = append(specs, n+"="+pkgs[n])
	}
	out, err := a.cmd("apt-cache", append([]string{"show"}, specs...)...).run(ctx)
	if err != nil {
		return nil, fmt.Errorf("package hashes: %w", err)
	}
	sums := map[string]string{}
	for _, stanza := range strings.Split(string(out), "\n\n") {
		f := parseControl(stanza)
		name, ver, sum := f["Package"], f["Version"], f["SHA256"]
		if name == "" || pkgs[name] != ver || sums[name] != "" {
			continue
		}
		if !sha256RE.MatchString(sum) {
			return nil, fmt.Errorf("package hashes: %s=%s has no SHA256 in the package lists", name, ver)
		}
		sums[name] = sum
	}
	for _, n := range specs {
		name, _, _ := strings.Cut(n, "=")
		if sums[name] == "" {
			return nil, fmt.Errorf("package hashes: %s is not in the package lists", n)
		}
	}
	return sums, nil
}

// download fetches exact versions (name=version) into dir.
func (a *aptRoot) download(ctx context.Context, dir string, specs []string) error {
	c := a.cmd("apt-get", append([]string{"download"}, specs...)...)
	c.dir = dir
	if _, err := c.run(ctx); err != nil {
		return fmt.Errorf("download pinned packages (a version in packages.lock may have left the archive; `gantry build --update-lock` re-resolves): %w", err)
	}
	return nil
}

// debInfo is a .deb's identity from its control file.
type debInfo struct{ Name, Version, Arch string }

// readDebInfo reads Package, Version and Architecture of a .deb.
func readDebInfo(ctx context.Context, path string) (debInfo, error) {
	out, err := command{name: "dpkg-deb", args: []string{"--field", path, "Package", "Version", "Architecture"}}.run(ctx)
	if err != nil {
		return debInfo{}, fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	f := parseControl(string(out))
	if f["Package"] == "" || f["Version"] == "" {
		return debInfo{}, fmt.Errorf("read %s: no Package or Version field", filepath.Base(path))
	}
	return debInfo{Name: f["Package"], Version: f["Version"], Arch: f["Architecture"]}, nil
}

// debsIn indexes the .debs of a folder by name=version.
func debsIn(ctx context.Context, dir string) (map[string]string, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.deb"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	idx := map[string]string{}
	for _, p := range paths {
		info, err := readDebInfo(ctx, p)
		if err != nil {
			return nil, err
		}
		idx[info.Name+"="+info.Version] = p
	}
	return idx, nil
}
