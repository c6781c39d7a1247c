package imagebuild

import (
	"strings"
	"testing"
)

func TestLockRoundTrip(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	src := []string{"uri=http://deb.debian.org/debian suites=trixie,trixie-updates components=main"}
	l := &Lock{
		Arch: "amd64", Include: []string{"containerd", "systemd"}, Exclude: []string{"debconf"},
		Distribution: "debian-13", Sources: src, Keyring: strings.Repeat("cd", 32),
		Packages: []LockedPackage{{"libc6", "2.36-9+deb12u14", sum}, {"libgmp10", "2:6.2.1+dfsg1-1.1", sum}},
	}
	data := l.Marshal("metal-dev")
	got, err := ParseLock(data, "packages.lock")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Marshal("metal-dev")) != string(data) {
		t.Errorf("round trip changed the lock:\n%s\n---\n%s", data, got.Marshal("metal-dev"))
	}
	if !got.Matches("amd64", []string{"containerd", "systemd"}, []string{"debconf"}, src) {
		t.Error("lock does not match its own request")
	}
	if got.Distribution != "debian-13" || got.Keyring != strings.Repeat("cd", 32) {
		t.Errorf("distribution %q, keyring %q", got.Distribution, got.Keyring)
	}
	for _, tc := range []struct {
		arch                      string
		include, exclude, sources []string
	}{
		{"arm64", []string{"containerd", "systemd"}, []string{"debconf"}, src},
		{"amd64", []string{"systemd"}, []string{"debconf"}, src},
		{"amd64", []string{"containerd", "systemd"}, nil, src},
		{"amd64", []string{"containerd", "systemd"}, []string{"debconf"}, nil},
		{"amd64", []string{"containerd", "systemd"}, []string{"debconf"}, []string{"uri=http://deb.debian.org/debian suites=bookworm components=main"}},
	} {
		if got.Matches(tc.arch, tc.include, tc.exclude, tc.sources) {
			t.Errorf("lock matches %s %v %v %v", tc.arch, tc.include, tc.exclude, tc.sources)
		}
	}
	if !strings.Contains(string(data), "libgmp10=2:6.2.1+dfsg1-1.1="+sum+"\n") {
		t.Errorf("lock lines are not name=version=sha256:\n%s", data)
	}
}

func TestParseLockErrors(t *testing.T) {
	sum := strings.Repeat("0", 64)
	tests := []struct{ name, text, want string }{
		{"no arch", "ab=1=" + sum + "\n", `no "# arch:" header`},
		{"no packages", "# arch: amd64\n", "no packages"},
		{"two fields", "# arch: amd64\na=1\n", "want name=version=sha256"},
		{"short hash", "# arch: amd64\na=1=abc\n", "want name=version=sha256"},
		{"bad version", "# arch: amd64\na=1 2=" + sum + "\n", "want name=version=sha256"},
		{"twice", "# arch: amd64\nab=1=" + sum + "\nab=2=" + sum + "\n", "listed twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseLock([]byte(tc.text), "x.lock")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
