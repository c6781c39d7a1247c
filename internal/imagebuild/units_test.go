package imagebuild

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseInstall(t *testing.T) {
	in := parseInstall(`[Unit]
WantedBy=not-install.target
[Service]
ExecStart=/x
[Install]
# comment
WantedBy=multi-user.target  sockets.target
RequiredBy=preconfigured.target
Alias=alias.service
Also=helper.socket
DefaultInstance=tty1
`)
	if strings.Join(in.wantedBy, ",") != "multi-user.target,sockets.target" || strings.Join(in.requiredBy, ",") != "preconfigured.target" ||
		strings.Join(in.alias, ",") != "alias.service" || strings.Join(in.also, ",") != "helper.socket" || in.defaultInstance != "tty1" {
		t.Errorf("parseInstall = %+v", in)
	}
}

func TestInstallUnits(t *testing.T) {
	s := newTestStage(t)
	put(t, s, map[string]string{
		unitDir + "/multi-user.target":               "[Unit]\n",
		unitDir + "/sockets.target":                  "[Unit]\n",
		unitDir + "/containerd.service":              "[Service]\nExecStart=/usr/bin/containerd\n[Install]\nWantedBy=multi-user.target\nAlso=containerd.socket\n",
		unitDir + "/containerd.socket":               "[Socket]\n[Install]\nWantedBy=sockets.target\n",
		unitDir + "/getty@.service":                  "[Service]\n[Install]\nWantedBy=multi-user.target\nDefaultInstance=tty1\n",
		unitDir + "/static.service":                  "[Service]\nExecStart=/x\n",
		unitDir + "/chrony.service":                  "-> /lib/systemd/system/chrony-real.service",
		"usr/lib/systemd/system/chrony-real.service": "[Service]\n[Install]\nWantedBy=multi-user.target\nAlias=chronyd.service\n",
	})
	shared, own := t.TempDir(), t.TempDir()
	write := func(dir, name, data string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(shared, "apiserver.service", "[Service]\n[Install]\nRequiredBy=preconfigured.target\n")
	write(shared, "preconfigured.target", "[Unit]\n")
	write(shared, "README", "not a unit")
	write(own, "apiserver.service", "[Service]\nExecStart=/own\n[Install]\nWantedBy=multi-user.target\n")
	write(own, "containerd.service.d/10-gantry.conf", "[Unit]\nAfter=configured.target\n")
	v := &Variant{Systemd: SystemdSpec{DefaultTarget: "multi-user.target",
		Enable: []string{"containerd.service", "getty@.service", "chrony.service"}, Mask: []string{"static.service"}}}
	res, err := installUnits(s, v, []string{shared, filepath.Join(t.TempDir(), "missing"), own})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.installed, ",") != "apiserver.service,preconfigured.target" {
		t.Errorf("installed %v", res.installed)
	}
	links := map[string]string{
		unitDir + "/multi-user.target.wants/containerd.service": "../containerd.service",
		unitDir + "/sockets.target.wants/containerd.socket":     "../containerd.socket",
		unitDir + "/multi-user.target.wants/getty@tty1.service": "../getty@.service",
		unitDir + "/multi-user.target.wants/chrony.service":     "../chrony.service",
		unitDir + "/chronyd.service":                            "chrony.service",
		// The variant's own unit replaced the shared one.
		unitDir + "/multi-user.target.wants/apiserver.service": "../apiserver.service",
		unitDir + "/default.target":                            "multi-user.target",
		"etc/systemd/system/static.service":                    "/dev/null",
	}
	for rel, want := range links {
		got, err := s.root.Readlink(rel)
		if err != nil || got != want {
			t.Errorf("%s -> %q (%v), want %q", rel, got, err, want)
		}
	}
	if s.exists(unitDir + "/preconfigured.target.requires/apiserver.service") {
		t.Error("the shared apiserver.service was enabled, not the variant's")
	}
	if data, err := s.root.ReadFile(unitDir + "/containerd.service.d/10-gantry.conf"); err != nil || !strings.Contains(string(data), "configured.target") {
		t.Errorf("drop-in not installed: %v", err)
	}
}

func TestInstallUnitsErrors(t *testing.T) {
	tests := []struct {
		name string
		spec SystemdSpec
		want string
	}{
		{"missing unit", SystemdSpec{DefaultTarget: "multi-user.target", Enable: []string{"nope.service"}}, "no unit file nope.service"},
		{"static unit", SystemdSpec{DefaultTarget: "multi-user.target", Enable: []string{"static.service"}}, "has no [Install] section"},
		{"template", SystemdSpec{DefaultTarget: "multi-user.target", Enable: []string{"tpl@.service"}}, "needs an instance"},
		{"default target", SystemdSpec{DefaultTarget: "graphical.target"}, "graphical.target is not a unit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStage(t)
			put(t, s, map[string]string{
				unitDir + "/multi-user.target": "[Unit]\n",
				unitDir + "/static.service":    "[Service]\n",
				unitDir + "/tpl@.service":      "[Service]\n[Install]\nWantedBy=multi-user.target\n",
			})
			_, err := installUnits(s, &Variant{Systemd: tc.spec}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestCheckSymlinks(t *testing.T) {
	s := newTestStage(t)
	put(t, s, map[string]string{"usr/sbin/xtables-nft-multi": "\x7fELF"})
	v := &Variant{Root: RootSpec{Symlinks: map[string]string{"/usr/sbin/iptables": "xtables-nft-multi", "/sbin/ip6tables": "/usr/sbin/xtables-nft-multi"}}}
	for p, target := range v.Root.Symlinks {
		if err := s.symlink(target, stagePath(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := checkSymlinks(s, v); err != nil {
		t.Fatal(err)
	}
	v.Root.Symlinks["/usr/sbin/ebtables"] = "ebtables-nft"
	if err := s.symlink("ebtables-nft", "usr/sbin/ebtables"); err != nil {
		t.Fatal(err)
	}
	if err := checkSymlinks(s, v); err == nil || !strings.Contains(err.Error(), "the target is not in the image") {
		t.Fatalf("dangling link: %v", err)
	}
}
