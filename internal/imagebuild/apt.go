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
	"slices"
	"sort"
	"strings"
)

// aptRoot is a private apt installation: its own configuration, sources
// (the variant's distribution), keyring, lists, archives and an empty (or
// stub) dpkg status, so that apt computes a closure from nothing, installs
// nothing on the host and reads none of the host's apt files.
type aptRoot struct {
	dir, arch string
}

// newAptRoot prepares <cache>/apt/<key>, where key hashes the architecture,
// the sources and the keyring, so lists are reused between builds of the
// same distribution.
func newAptRoot(cacheDir, arch string, dist DistributionSpec) (*aptRoot, error) {
	keyring, err := os.ReadFile(dist.Keyring)
	if err != nil {
		return nil, fmt.Errorf("apt root: distribution keyring: %w", err)
	}
	var sources bytes.Buffer
	for _, s := range dist.Sources {
		fmt.Fprintf(&sources, "Types: deb\nURIs: %s\nSuites: %s\nComponents: %s\nSigned-By: %%s\n\n",
			s.URI, strings.Join(s.Suites, " "), strings.Join(s.Components, " "))
	}
	h := sha256.New()
	fmt.Fprintf(h, "arch %s\n%s\nkeyring %d\n", arch, sources.String(), len(keyring))
	h.Write(keyring)
	a := &aptRoot{dir: filepath.Join(cacheDir, "apt", hex.EncodeToString(h.Sum(nil))[:16]), arch: arch}
	for _, d := range []string{"etc/apt.conf.d", "etc/sources.list.d", "etc/preferences.d", "etc/trusted.gpg.d",
		"state/lists/partial", "cache/archives/partial", "log"} {
		if err := os.MkdirAll(filepath.Join(a.dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("apt root: %w", err)
		}
	}
	keyPath := filepath.Join(a.dir, "etc", "archive-keyring.gpg")
	if strings.HasSuffix(dist.Keyring, ".asc") {
		keyPath = strings.TrimSuffix(keyPath, ".gpg") + ".asc"
	}
	files := map[string]string{
		keyPath: string(keyring),
		filepath.Join(a.dir, "etc", "sources.list.d", "distribution.sources"): strings.ReplaceAll(sources.String(), "%s", keyPath),
		filepath.Join(a.dir, "etc", "sources.list"):                           "",
		a.configPath(): a.config(),
	}
	for p, data := range files {
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			return nil, fmt.Errorf("apt root: %w", err)
		}
	}
	if err := a.writeStatus(nil); err != nil {
		return nil, err
	}
	return a, nil
}

// configPath is the private apt.conf, named by APT_CONFIG.
func (a *aptRoot) configPath() string { return filepath.Join(a.dir, "etc", "apt.conf") }

// config is the private apt.conf. apt reads $APT_CONFIG first, then
// Dir::Etc::Parts and Dir::Etc::Main, which it names: so no file of the
// host's /etc/apt is read (no sources, keys, proxies or index targets).
func (a *aptRoot) config() string {
	o := map[string]string{
		"Dir::Etc::Main":             "/dev/null",
		"Dir::Etc::Parts":            filepath.Join(a.dir, "etc/apt.conf.d"),
		"Dir::Etc::SourceList":       filepath.Join(a.dir, "etc/sources.list"),
		"Dir::Etc::SourceParts":      filepath.Join(a.dir, "etc/sources.list.d"),
		"Dir::Etc::Preferences":      filepath.Join(a.dir, "etc/preferences"),
		"Dir::Etc::PreferencesParts": filepath.Join(a.dir, "etc/preferences.d"),
		"Dir::Etc::Trusted":          filepath.Join(a.dir, "etc/trusted.gpg"),
		"Dir::Etc::TrustedParts":     filepath.Join(a.dir, "etc/trusted.gpg.d"),
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
		"Acquire::Retries":           "3",
	}
	if os.Getuid() == 0 {
		// apt would drop to _apt, which cannot write the private lists.
		o["APT::Sandbox::User"] = "root"
	}
	var b strings.Builder
	for _, k := range sortedKeys(o) {
		fmt.Fprintf(&b, "%s %q;\n", k, o[k])
	}
	return b.String()
}

// cmd is an apt-get or apt-cache command in the private root.
func (a *aptRoot) cmd(prog string, args ...string) command {
	return command{
		name: prog,
		args: append([]string{"-q"}, args...),
		env:  []string{"APT_CONFIG=" + a.configPath(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C"},
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

// versions lists the versions the archive has of each package named, as
// apt-cache madison reports them (newest first); a package it does not know
// has none.
func (a *aptRoot) versions(ctx context.Context, pkgs []LockedPackage) (map[string][]string, error) {
	names := make([]string, 0, len(pkgs))
	for _, p := range pkgs {
		names = append(names, p.Name)
	}
	out, err := a.cmd("apt-cache", append([]string{"madison"}, names...)...).run(ctx)
	if err != nil {
		return nil, fmt.Errorf("archive versions: %w", err)
	}
	return parseMadison(out), nil
}

// parseMadison reads "name | version | source" lines.
func parseMadison(out []byte) map[string][]string {
	vs := map[string][]string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) < 3 {
			continue
		}
		name, ver := strings.TrimSpace(f[0]), strings.TrimSpace(f[1])
		if name != "" && ver != "" && !slices.Contains(vs[name], ver) {
			vs[name] = append(vs[name], ver)
		}
	}
	return vs
}

// download fetches exact versions (name=version) into dir.
func (a *aptRoot) download(ctx context.Context, dir string, specs []string) error {
	c := a.cmd("apt-get", append([]string{"download"}, specs...)...)
	c.dir = dir
	if _, err := c.run(ctx); err != nil {
		return fmt.Errorf("download pinned packages: %w", err)
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
