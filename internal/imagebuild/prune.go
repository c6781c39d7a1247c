package imagebuild

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"
)

// builtinRemove are removed from every image: documentation, manuals,
// translations, shell completions, package-manager state and hooks, perl,
// and the contents of /var (Gantry mounts /var from the data partition;
// systemd-tmpfiles makes what services need there).
var builtinRemove = []string{
	"/usr/share/doc", "/usr/share/doc-base", "/usr/share/man", "/usr/share/info", "/usr/share/lintian",
	"/usr/share/linda", "/usr/share/bug", "/usr/share/reportbug", "/usr/share/menu", "/usr/share/locale",
	"/usr/share/i18n", "/usr/share/bash-completion", "/usr/share/zsh", "/usr/share/fish", "/usr/share/debconf",
	"/usr/share/debhelper", "/usr/share/perl", "/usr/share/perl5", "/usr/lib/*/perl", "/usr/lib/*/perl5",
	"/usr/lib/*/perl-base", "/usr/share/initramfs-tools", "/etc/initramfs-tools", "/etc/kernel", "/usr/lib/kernel",
	"/usr/lib/apt", "/usr/lib/dpkg", "/usr/share/dpkg", "/etc/apt", "/etc/dpkg", "/var/*",
}

// keepLocales are the /usr/lib/locale entries kept: the C locale only.
var keepLocales = map[string]bool{"C.utf8": true, "C.UTF-8": true}

var (
	shellNames = map[string]bool{"sh": true, "bash": true, "rbash": true, "dash": true, "ash": true, "busybox": true,
		"zsh": true, "ksh": true, "ksh93": true, "mksh": true, "csh": true, "tcsh": true, "fish": true, "yash": true}
	// forbiddenRE are names that mean a package manager or perl.
	forbiddenRE = regexp.MustCompile(`^(apt|apt-.+|aptitude|dpkg|dpkg-.+|perl|perl5.*|cpan|debconf|debconf-.+)$`)
)

func isShell(name string) bool { return shellNames[name] }

// forbidden says why a tree path must not be in a Gantry root, or "".
func forbidden(rel string) string {
	base := path.Base(rel)
	switch {
	case shellNames[base]:
		return "a shell"
	case forbiddenRE.MatchString(base):
		return "a package manager or perl"
	}
	return ""
}

// pruneResult reports what prune removed.
type pruneResult struct {
	bytes     int64
	paths     int
	scripts   []string
	unmatched []string
}

// prune removes the built-in set, the variant's root.remove patterns,
// locales but C, shells, package managers and perl wherever they are, and
// scripts whose interpreter is not in the image.
func prune(s *stage, extra []string) (*pruneResult, error) {
	res := &pruneResult{}
	patterns := append(append([]string(nil), builtinRemove...), extra...)
	matched := map[string]bool{}
	var victims []string
	err := s.walk(func(rel string, d fs.DirEntry) error {
		p := "/" + rel
		for _, pat := range patterns {
			if ok, _ := path.Match(pat, p); ok {
				matched[pat] = true
				victims = append(victims, rel)
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
		}
		if path.Dir(rel) == "usr/lib/locale" && !keepLocales[d.Name()] {
			victims = append(victims, rel)
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if forbidden(rel) != "" {
			victims = append(victims, rel)
			if d.IsDir() {
				return fs.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	for _, v := range victims {
		n, b, err := treeSize(s, v)
		if err != nil {
			return nil, fmt.Errorf("prune: %w", err)
		}
		if err := s.root.RemoveAll(v); err != nil {
			return nil, fmt.Errorf("prune: %w", err)
		}
		res.paths += n
		res.bytes += b
	}
	for _, pat := range extra {
		if !matched[pat] {
			res.unmatched = append(res.unmatched, pat)
		}
	}
	// Removing one dead script cannot revive another, so one pass is enough.
	dead, err := deadScripts(s)
	if err != nil {
		return nil, err
	}
	for _, d := range dead {
		fi, err := s.root.Lstat(d)
		if err != nil {
			return nil, fmt.Errorf("prune: %w", err)
		}
		if err := s.root.Remove(d); err != nil {
			return nil, fmt.Errorf("prune: %w", err)
		}
		res.paths++
		res.bytes += fi.Size()
		res.scripts = append(res.scripts, "/"+d)
	}
	return res, nil
}

// treeSize counts the entries and bytes under rel.
func treeSize(s *stage, rel string) (int, int64, error) {
	n, b := 0, int64(0)
	err := fs.WalkDir(s.root.FS(), rel, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		n++
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				b += fi.Size()
			}
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	return n, b, err
}

// interpreter returns the program a script's #! line names ("" if the file
// is not a script). /usr/bin/env NAME is looked up in /usr/bin and
// /usr/sbin.
func interpreter(head []byte) (string, bool) {
	if !bytes.HasPrefix(head, []byte("#!")) {
		return "", false
	}
	line, _, _ := bytes.Cut(head[2:], []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) == 0 {
		return "", true
	}
	if path.Base(f[0]) == "env" {
		for _, a := range f[1:] {
			if !strings.HasPrefix(a, "-") && !strings.Contains(a, "=") {
				return "/usr/bin/" + a + "|/usr/sbin/" + a, true
			}
		}
		return "", true
	}
	return f[0], true
}

// deadScripts lists the executable scripts whose interpreter the image
// does not have (shell, perl and python scripts, mostly).
func deadScripts(s *stage) ([]string, error) {
	var dead []string
	err := s.walk(func(rel string, d fs.DirEntry) error {
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil || fi.Mode().Perm()&0o111 == 0 {
			return err
		}
		f, err := s.root.Open(rel)
		if err != nil {
			return err
		}
		head := make([]byte, 256)
		n, _ := io.ReadFull(f, head)
		f.Close()
		interp, script := interpreter(head[:n])
		if !script {
			return nil
		}
		for _, cand := range strings.Split(interp, "|") {
			if cand == "" {
				continue
			}
			if r, err := s.resolve(cand); err == nil {
				if fi, err := s.root.Stat(r); err == nil && fi.Mode().IsRegular() {
					return nil
				}
			}
		}
		dead = append(dead, rel)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("prune: scripts: %w", err)
	}
	sort.Strings(dead)
	return dead, nil
}

// assertClean fails if the tree holds a shell, a package manager or perl,
// or a script whose interpreter is missing. It is the last check before
// the root filesystem is made.
func assertClean(s *stage) error {
	var bad []string
	err := s.walk(func(rel string, d fs.DirEntry) error {
		if why := forbidden(rel); why != "" {
			bad = append(bad, fmt.Sprintf("/%s (%s)", rel, why))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check root: %w", err)
	}
	dead, err := deadScripts(s)
	if err != nil {
		return err
	}
	for _, d := range dead {
		bad = append(bad, fmt.Sprintf("/%s (script without its interpreter)", d))
	}
	if len(bad) > 0 {
		return fmt.Errorf("check root: the root must not contain:\n  %s", strings.Join(bad, "\n  "))
	}
	return nil
}
