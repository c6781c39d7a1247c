package imagebuild

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/gantry-os/gantry/pkg/model"
)

// Where Gantry's own data goes in the image.
const (
	TemplatesPath = "usr/share/templates"
	DefaultsPath  = "usr/share/gantry/defaults.d"
	RootJSONPath  = "usr/share/gantry/root.json"
	EtcSkelPath   = "usr/share/gantry/etc-skel"
	OSReleasePath = "usr/lib/os-release"
	// VariantCopyPath keeps the variant file (with its settings groups)
	// and PackagesPath the installed packages, name=version=sha256.
	VariantCopyPath = "usr/share/gantry/variant.toml"
	PackagesPath    = "usr/share/gantry/packages"
	// GroupsPath is the variant's settings groups, which apiserver,
	// storewolf and early-boot-config build the settings model from
	// (model.DefaultGroupsFile).
	GroupsPath = "usr/share/gantry/settings-groups.json"
)

// skeleton are the top-level folders every root has, with their modes.
var skeleton = []struct {
	rel  string
	mode fs.FileMode
}{
	{"boot", 0o755}, {"dev", 0o755}, {"etc", 0o755}, {"home", 0o755}, {"local", 0o755}, {"mnt", 0o755},
	{"opt", 0o755}, {"proc", 0o555}, {"root", 0o700}, {"run", 0o755}, {"srv", 0o755}, {"sys", 0o555},
	{"tmp", fs.ModeSticky | 0o777}, {"usr/share/gantry", 0o755}, {"var", 0o755},
}

// releaseInfo are the os-release values.
type releaseInfo struct {
	variant, version, buildID, arch string
}

// osRelease renders /usr/lib/os-release.
func osRelease(r releaseInfo) string {
	q := strconv.Quote
	return strings.Join([]string{
		"NAME=Gantry",
		"ID=gantry",
		"VERSION_ID=" + r.version,
		"VERSION=" + q(r.version+" ("+r.variant+")"),
		"PRETTY_NAME=" + q("Gantry "+r.version+" ("+r.variant+")"),
		"VARIANT_ID=" + r.variant,
		"BUILD_ID=" + r.buildID,
		"HOME_URL=" + q("https://github.com/gantry-os/gantry"),
		"",
	}, "\n")
}

// etcFiles are written into /etc: what base-files, netbase and the
// maintainer scripts would leave, reduced to what a shell-less host needs.
var etcFiles = map[string]string{
	"etc/nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n" +
		"protocols: files\nservices: files\nethers: files\nrpc: files\n",
	"etc/hosts": "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
}

// configureRoot adds to the extracted packages what their maintainer
// scripts and base packages would have: the folder skeleton, accounts,
// os-release, an empty machine-id, nsswitch.conf and hosts; then Gantry's
// data: templates, defaults.d, root.json, the variant file and the package
// inventory; and the variant's links.
func configureRoot(s *stage, v *Variant, rel releaseInfo, lock *Lock, rootJSON string) (*accounts, error) {
	for _, d := range skeleton {
		if err := s.mkdirAll(d.rel, d.mode); err != nil {
			return nil, err
		}
		if err := s.root.Chmod(d.rel, d.mode); err != nil {
			return nil, fmt.Errorf("root skeleton: %w", err)
		}
		delete(s.dirModes, d.rel)
	}
	names := make([]string, len(lock.Packages))
	for i, p := range lock.Packages {
		names[i] = p.Name
	}
	acc, err := buildAccounts(s, v, names)
	if err != nil {
		return nil, err
	}
	passwd, group, shadow := acc.files()
	files := []struct {
		rel  string
		data string
		mode fs.FileMode
	}{
		{"etc/passwd", passwd, 0o644},
		{"etc/group", group, 0o644},
		{"etc/shadow", shadow, 0o600},
		// Empty: systemd makes a machine id at each boot (the root is
		// read-only and /etc a tmpfs) without running first-boot units.
		{"etc/machine-id", "", 0o444},
		{OSReleasePath, osRelease(rel), 0o644},
		{VariantCopyPath, string(v.Raw), 0o644},
		{PackagesPath, string(packageInventory(lock)), 0o644},
	}
	for _, rel := range sortedKeys(etcFiles) {
		files = append(files, struct {
			rel  string
			data string
			mode fs.FileMode
		}{rel, etcFiles[rel], 0o644})
	}
	for _, f := range files {
		if err := s.writeFile(f.rel, []byte(f.data), f.mode); err != nil {
			return nil, fmt.Errorf("configure root: %w", err)
		}
	}
	if err := s.symlink("../"+OSReleasePath, "etc/os-release"); err != nil {
		return nil, fmt.Errorf("configure root: %w", err)
	}
	if err := copyTreeIn(s, filepath.Join(v.Dir, "templates"), TemplatesPath, nil); err != nil {
		return nil, fmt.Errorf("configure root: templates: %w", err)
	}
	if err := copyTreeIn(s, filepath.Join(v.Dir, "defaults.d"), DefaultsPath, func(n string) bool { return strings.HasSuffix(n, ".toml") }); err != nil {
		return nil, fmt.Errorf("configure root: defaults.d: %w", err)
	}
	groups, err := model.MarshalGroupsFile(v.Name, v.Settings.Groups)
	if err != nil {
		return nil, fmt.Errorf("configure root: settings groups: %w", err)
	}
	if err := s.writeFile(GroupsPath, groups, 0o644); err != nil {
		return nil, fmt.Errorf("configure root: %w", err)
	}
	if rootJSON != "" {
		if err := s.copyIn(rootJSON, RootJSONPath, 0o644); err != nil {
			return nil, fmt.Errorf("configure root: --root-json: %w", err)
		}
	}
	for _, p := range sortedKeys(v.Root.Symlinks) {
		if err := s.symlink(v.Root.Symlinks[p], stagePath(p)); err != nil {
			return nil, fmt.Errorf("configure root: root.symlinks %s: %w", p, err)
		}
	}
	return acc, nil
}

// checkSymlinks fails when a link of root.symlinks leads nowhere in the
// finished tree (a typo, or a target the packages no longer ship).
func checkSymlinks(s *stage, v *Variant) error {
	for _, p := range sortedKeys(v.Root.Symlinks) {
		r, err := s.resolve(stagePath(p))
		if err != nil {
			return fmt.Errorf("root.symlinks %s: %w", p, err)
		}
		if _, err := s.root.Stat(r); err != nil {
			return fmt.Errorf("root.symlinks %s -> %s: the target is not in the image", p, v.Root.Symlinks[p])
		}
	}
	return nil
}

// packageInventory lists the installed packages, name=version=sha256.
func packageInventory(l *Lock) []byte {
	var b strings.Builder
	for _, p := range l.Packages {
		b.WriteString(p.String() + "\n")
	}
	return []byte(b.String())
}

// copyTreeIn copies a host folder (links followed) into the tree; keep, if
// set, filters file names. The folder must exist.
func copyTreeIn(s *stage, src, rel string, keep func(string) bool) error {
	return copyTreeDepth(s, src, rel, keep, 0)
}

func copyTreeDepth(s *stage, src, rel string, keep func(string) bool, depth int) error {
	if depth > 16 {
		return fmt.Errorf("%s: folders nested too deep (a link loop?)", src)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if rel != "" {
		if err := s.mkdirAll(rel, 0o755); err != nil {
			return err
		}
	}
	for _, e := range ents {
		p := filepath.Join(src, e.Name())
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			if err := copyTreeDepth(s, p, path.Join(rel, e.Name()), keep, depth+1); err != nil {
				return err
			}
		case fi.Mode().IsRegular() && (keep == nil || keep(e.Name())):
			if err := s.copyIn(p, path.Join(rel, e.Name()), fi.Mode().Perm()&0o755|0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// makeEtcSkel copies /etc to the skeleton the initramfs seeds the /etc
// tmpfs from: folders and links recreated, files hard-linked (no space in
// the image).
func makeEtcSkel(s *stage) error {
	if err := s.root.RemoveAll(EtcSkelPath); err != nil {
		return fmt.Errorf("etc skeleton: %w", err)
	}
	if err := s.mkdirAll(EtcSkelPath, 0o755); err != nil {
		return err
	}
	err := fs.WalkDir(s.root.FS(), "etc", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := EtcSkelPath + strings.TrimPrefix(p, "etc")
		fi, err := s.root.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			if err := s.mkdirAll(dst, 0o755); err != nil {
				return err
			}
			return s.root.Chmod(dst, fi.Mode()&(fs.ModePerm|fs.ModeSetgid|fs.ModeSticky))
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := s.root.Readlink(p)
			if err != nil {
				return err
			}
			return s.symlink(t, dst)
		case fi.Mode().IsRegular():
			return s.root.Link(p, dst)
		}
		return fmt.Errorf("/%s: unsupported file type %s", p, fi.Mode().Type())
	})
	if err != nil {
		return fmt.Errorf("etc skeleton: %w", err)
	}
	return nil
}

// installCommands installs the node binary as /usr/bin/gantry-node and
// makes each command name a relative link to it (/usr/bin/signpost ->
// gantry-node), which the binary dispatches on.
func installCommands(s *stage, binDir string, names []string) error {
	bin := path.Join("usr/bin", NodeBinary)
	if err := s.copyIn(filepath.Join(binDir, NodeBinary), bin, 0o755); err != nil {
		return fmt.Errorf("install %s: %w", NodeBinary, err)
	}
	for _, n := range names {
		if err := s.symlink(NodeBinary, path.Join("usr/bin", n)); err != nil {
			return fmt.Errorf("install %s: %w", n, err)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
