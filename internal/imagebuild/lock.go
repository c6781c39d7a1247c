package imagebuild

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// LockFile is the name of the package lock in a variant folder.
const LockFile = "packages.lock"

// Lock pins a variant's package closure: the request it was resolved for
// and, per package, the exact version and the SHA-256 of its .deb.
type Lock struct {
	// Arch is the Debian architecture (amd64).
	Arch string
	// Include and Exclude are the sorted request the closure answers.
	Include, Exclude []string
	// Distribution names the archive the closure was resolved against:
	// Sources are its sources (AptSource.String) and Keyring the SHA-256 of
	// the keyring that checked them.
	Distribution string
	Sources      []string
	Keyring      string
	// Packages are sorted by name.
	Packages []LockedPackage
}

// LockedPackage is one line of the lock: name=version=sha256.
type LockedPackage struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
}

// String is the lock line.
func (p LockedPackage) String() string { return p.Name + "=" + p.Version + "=" + p.SHA256 }

var (
	versionRE = regexp.MustCompile(`^[0-9A-Za-z.+~:-]+$`)
	sha256RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Matches reports whether the lock was resolved for this request from
// these sources.
func (l *Lock) Matches(arch string, include, exclude, sources []string) bool {
	return l.Arch == arch && slices.Equal(l.Include, include) && slices.Equal(l.Exclude, exclude) &&
		slices.Equal(l.Sources, sources)
}

// Find returns the locked package of that name.
func (l *Lock) Find(name string) (LockedPackage, bool) {
	i, ok := slices.BinarySearchFunc(l.Packages, name, func(p LockedPackage, n string) int { return strings.Compare(p.Name, n) })
	if !ok {
		return LockedPackage{}, false
	}
	return l.Packages[i], true
}

// Marshal renders the lock file: a header naming the request, then one
// name=version=sha256 line per package.
func (l *Lock) Marshal(variant string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Package lock of the Gantry variant %s, written by `gantry build`.\n", variant)
	fmt.Fprintf(&b, "# `gantry build --update-lock` re-resolves it; edits to the lines below are refused.\n")
	fmt.Fprintf(&b, "# arch: %s\n", l.Arch)
	fmt.Fprintf(&b, "# include: %s\n", strings.Join(l.Include, " "))
	fmt.Fprintf(&b, "# exclude: %s\n", strings.Join(l.Exclude, " "))
	if l.Distribution != "" {
		fmt.Fprintf(&b, "# distribution: %s\n", l.Distribution)
	}
	for _, src := range l.Sources {
		fmt.Fprintf(&b, "# source: %s\n", src)
	}
	if l.Keyring != "" {
		fmt.Fprintf(&b, "# keyring: sha256:%s\n", l.Keyring)
	}
	for _, p := range l.Packages {
		b.WriteString(p.String())
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ParseLock reads a lock file's bytes; file names it in errors.
func ParseLock(data []byte, file string) (*Lock, error) {
	l := &Lock{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "#"):
			k, val, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, "#")), ":")
			if !ok {
				continue
			}
			switch k {
			case "arch":
				l.Arch = strings.TrimSpace(val)
			case "include":
				l.Include = strings.Fields(val)
			case "exclude":
				l.Exclude = strings.Fields(val)
			case "distribution":
				l.Distribution = strings.TrimSpace(val)
			case "source":
				l.Sources = append(l.Sources, strings.TrimSpace(val))
			case "keyring":
				l.Keyring = strings.TrimPrefix(strings.TrimSpace(val), "sha256:")
			}
			continue
		}
		parts := strings.Split(line, "=")
		if len(parts) != 3 || !debNameRE.MatchString(parts[0]) || !versionRE.MatchString(parts[1]) || !sha256RE.MatchString(parts[2]) {
			return nil, fmt.Errorf("%s:%d: want name=version=sha256, got %q", file, n, line)
		}
		if seen[parts[0]] {
			return nil, fmt.Errorf("%s:%d: package %s is listed twice", file, n, parts[0])
		}
		seen[parts[0]] = true
		l.Packages = append(l.Packages, LockedPackage{Name: parts[0], Version: parts[1], SHA256: parts[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if l.Arch == "" {
		return nil, fmt.Errorf("%s: no \"# arch:\" header", file)
	}
	if len(l.Packages) == 0 {
		return nil, fmt.Errorf("%s: no packages", file)
	}
	sort.Strings(l.Include)
	sort.Strings(l.Exclude)
	sort.Slice(l.Packages, func(i, j int) bool { return l.Packages[i].Name < l.Packages[j].Name })
	return l, nil
}

// ReadLock reads the lock at path; it returns nil and no error when there
// is none.
func ReadLock(path string) (*Lock, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read package lock: %w", err)
	}
	return ParseLock(data, path)
}
