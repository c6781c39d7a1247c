package imagebuild

import (
	"strings"
	"testing"
)

func TestForbidden(t *testing.T) {
	tests := []struct {
		rel  string
		want bool
	}{
		{"usr/bin/sh", true}, {"usr/bin/bash", true}, {"usr/bin/dash", true}, {"usr/bin/busybox", true},
		{"usr/bin/apt-get", true}, {"usr/bin/apt", true}, {"etc/apt", true}, {"var/lib/dpkg", true},
		{"usr/bin/dpkg-deb", true}, {"usr/bin/perl", true}, {"usr/bin/perl5.36.0", true},
		{"usr/share/perl5", true}, {"usr/bin/debconf-show", true},
		{"usr/bin/ssh", false}, {"usr/bin/containerd", false}, {"usr/lib/x86_64-linux-gnu/libapt.so", false},
		{"usr/sbin/chronyd", false}, {"usr/share/templates/hostname", false}, {"usr/bin/bashful", false},
	}
	for _, tc := range tests {
		if got := forbidden(tc.rel) != ""; got != tc.want {
			t.Errorf("forbidden(%s) = %v, want %v", tc.rel, got, tc.want)
		}
	}
}

func TestInterpreter(t *testing.T) {
	tests := []struct {
		head, interp string
		script       bool
	}{
		{"#!/bin/sh\necho", "/bin/sh", true},
		{"#! /usr/bin/perl -w\n", "/usr/bin/perl", true},
		{"#!/usr/bin/env python3\n", "/usr/bin/python3|/usr/sbin/python3", true},
		{"#!/usr/bin/env -S LC_ALL=C awk -f\n", "/usr/bin/awk|/usr/sbin/awk", true},
		{"\x7fELF\x02\x01", "", false},
		{"plain text", "", false},
	}
	for _, tc := range tests {
		interp, script := interpreter([]byte(tc.head))
		if interp != tc.interp || script != tc.script {
			t.Errorf("interpreter(%q) = %q, %v; want %q, %v", tc.head, interp, script, tc.interp, tc.script)
		}
	}
}

func TestPrune(t *testing.T) {
	s := newTestStage(t)
	put(t, s, map[string]string{
		"usr/share/doc/systemd/copyright":           "c",
		"usr/share/man/man1/ls.1.gz":                "m",
		"usr/share/locale/de/LC_MESSAGES/x.mo":      "l",
		"usr/lib/locale/C.utf8/LC_CTYPE":            "keep",
		"usr/lib/locale/de_DE.utf8/LC_CTYPE":        "drop",
		"usr/bin/sh":                                "-> dash",
		"usr/bin/dash":                              "\x7fELF shell",
		"usr/bin/perl":                              "\x7fELF perl",
		"usr/share/perl5/Debconf/Db.pm":             "pm",
		"var/lib/dpkg/status":                       "s",
		"var/cache/x":                               "x",
		"etc/apt/sources.list":                      "s",
		"usr/bin/tool":                              "\x7fELF tool",
		"usr/sbin/needs-sh":                         "#!/bin/sh\nexit 0\n",
		"usr/sbin/needs-tool":                       "#!/usr/bin/tool\n",
		"usr/lib/x86_64-linux-gnu/gconv/UTF-16.so":  "g",
		"usr/lib/x86_64-linux-gnu/libc.so.6":        "c",
		"usr/lib/modules/6.1/modules.symbols":       "s",
		"usr/lib/modules/6.1/modules.symbols.bin":   "s",
		"usr/lib/modules/6.1/modules.dep.bin":       "d",
		"usr/share/bash-completion/completions/apt": "a",
	})
	if err := s.writeFile("usr/share/templates/motd", []byte("#!not executable, kept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := prune(s, []string{"/usr/lib/*/gconv", "/usr/lib/modules/*/modules.symbols*", "/nothing/here"})
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"usr/share/doc", "usr/share/man", "usr/share/locale", "usr/lib/locale/de_DE.utf8", "usr/bin/sh",
		"usr/bin/dash", "usr/bin/perl", "usr/share/perl5", "var/lib", "var/cache", "etc/apt", "usr/sbin/needs-sh",
		"usr/lib/x86_64-linux-gnu/gconv", "usr/lib/modules/6.1/modules.symbols", "usr/lib/modules/6.1/modules.symbols.bin",
		"usr/share/bash-completion"} {
		if s.exists(gone) {
			t.Errorf("/%s survived", gone)
		}
	}
	for _, kept := range []string{"usr/lib/locale/C.utf8/LC_CTYPE", "usr/bin/tool", "usr/sbin/needs-tool", "usr/share/templates/motd",
		"usr/lib/x86_64-linux-gnu/libc.so.6", "usr/lib/modules/6.1/modules.dep.bin", "var"} {
		if !s.exists(kept) {
			t.Errorf("/%s was removed", kept)
		}
	}
	if strings.Join(res.scripts, ",") != "/usr/sbin/needs-sh" {
		t.Errorf("dead scripts %v", res.scripts)
	}
	if strings.Join(res.unmatched, ",") != "/nothing/here" {
		t.Errorf("unmatched %v", res.unmatched)
	}
	if err := assertClean(s); err != nil {
		t.Errorf("pruned tree is not clean: %v", err)
	}
}

func TestAssertClean(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"shell", map[string]string{"usr/libexec/x/bash": "\x7fELF"}, "/usr/libexec/x/bash (a shell)"},
		{"busybox link", map[string]string{"usr/bin/busybox": "-> /nowhere"}, "/usr/bin/busybox (a shell)"},
		{"dpkg dir", map[string]string{"var/lib/dpkg/status": "s"}, "/var/lib/dpkg (a package manager or perl)"},
		{"dead script", map[string]string{"usr/bin/x": "#!/usr/bin/python3\n"}, "/usr/bin/x (script without its interpreter)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStage(t)
			put(t, s, tc.files)
			err := assertClean(s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
