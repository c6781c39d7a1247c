package earlyboot_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/internal/settings/earlyboot"
	"github.com/gantry-os/gantry/internal/settings/userdata"
	"github.com/gantry-os/gantry/internal/testsupport"
)

const ud = "[settings]\nmotd = \"from the provider\"\n"

func TestProviders(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "ud.toml", []byte(ud))
	empty := writeFile(t, dir, "empty.toml", nil)
	big := writeFile(t, dir, "big.toml", make([]byte, userdata.MaxSize+1))
	rr := makeISO(t, isoOptions{label: "GANTRY-UD", rockRidge: true}, map[string][]byte{"user-data.toml": []byte(ud), "README": []byte("x")})
	joliet := makeISO(t, isoOptions{label: "GANTRY-UD", joliet: true}, map[string][]byte{"user-data.toml": []byte(ud)})
	plain := makeISO(t, isoOptions{label: "GANTRY-UD"}, map[string][]byte{"user-data.toml": []byte(ud)})
	otherLabel := makeISO(t, isoOptions{label: "SOMETHING", rockRidge: true}, map[string][]byte{"user-data.toml": []byte(ud)})
	noFile := makeISO(t, isoOptions{label: "GANTRY-UD", rockRidge: true}, map[string][]byte{"meta-data": []byte("x")})
	bare := makeISO(t, isoOptions{label: "GANTRY-UD", rockRidge: true}, nil)
	notISO := writeFile(t, dir, "not.iso", make([]byte, 1<<20))

	tests := []struct {
		name    string
		p       earlyboot.Provider
		want    string // "<nil>" for none
		wantErr string
	}{
		{name: "file", p: earlyboot.FileProvider{Path: file}, want: ud},
		{name: "missing file", p: earlyboot.FileProvider{Path: filepath.Join(dir, "nope.toml")}, want: "<nil>"},
		{name: "missing directory", p: earlyboot.FileProvider{Path: filepath.Join(dir, "no/such/dir/ud.toml")}, want: "<nil>"},
		{name: "empty file", p: earlyboot.FileProvider{Path: empty}, want: ""},
		{name: "file is a directory", p: earlyboot.FileProvider{Path: dir}, wantErr: "is a directory"},
		{name: "file too large", p: earlyboot.FileProvider{Path: big}, wantErr: "larger than the limit of 1048576 bytes"},
		{name: "fw_cfg", p: earlyboot.FwCfgProvider{Sysfs: fwCfgTree(t, []byte(ud))}, want: ud},
		{name: "fw_cfg absent", p: earlyboot.FwCfgProvider{Sysfs: t.TempDir()}, want: "<nil>"},
		{name: "config disk, Rock Ridge", p: earlyboot.ConfigDiskProvider{Device: rr, Label: "GANTRY-UD"}, want: ud},
		{name: "config disk, Joliet", p: earlyboot.ConfigDiskProvider{Device: joliet, Label: "GANTRY-UD"}, want: ud},
		{name: "config disk, plain ISO 9660 names", p: earlyboot.ConfigDiskProvider{Device: plain, Label: "GANTRY-UD"}, want: ud},
		{name: "config disk, any label", p: earlyboot.ConfigDiskProvider{Device: otherLabel}, want: ud},
		{name: "config disk absent", p: earlyboot.ConfigDiskProvider{Device: filepath.Join(dir, "no.iso"), Label: "GANTRY-UD"}, want: "<nil>"},
		{name: "config disk, wrong label", p: earlyboot.ConfigDiskProvider{Device: otherLabel, Label: "GANTRY-UD"}, wantErr: `volume label is "SOMETHING", want "GANTRY-UD"`},
		{name: "config disk without user data", p: earlyboot.ConfigDiskProvider{Device: noFile, Label: "GANTRY-UD"}, wantErr: "has no user-data.toml at its root (found: meta-data)"},
		{name: "config disk, empty", p: earlyboot.ConfigDiskProvider{Device: bare, Label: "GANTRY-UD"}, wantErr: "root directory is empty"},
		{name: "config disk, not ISO 9660", p: earlyboot.ConfigDiskProvider{Device: notISO, Label: "GANTRY-UD"}, wantErr: "not an ISO 9660 filesystem"},
		{name: "config disk, empty file", p: earlyboot.ConfigDiskProvider{Device: empty}, wantErr: "config disk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := tt.p.Fetch(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Fetch error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			got := "<nil>"
			if data != nil {
				got = string(data)
			}
			if got != tt.want {
				t.Fatalf("Fetch = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestProviderNames(t *testing.T) {
	tests := []struct {
		p            earlyboot.Provider
		name, source string
	}{
		{earlyboot.FileProvider{Path: "/x/u.toml"}, "file", "/x/u.toml"},
		{earlyboot.FileProvider{Label: "local-overrides", Path: "/local/o.toml"}, "local-overrides", "/local/o.toml"},
		{earlyboot.FwCfgProvider{}, "fw_cfg", "/sys/firmware/qemu_fw_cfg/by_name/opt/gantry/user-data/raw"},
		{earlyboot.ConfigDiskProvider{Device: "/dev/sr0"}, "config-disk", "/dev/sr0:user-data.toml"},
		{earlyboot.IMDSProvider{Client: earlyboot.NewIMDSClient("")}, "imds", "http://169.254.169.254/latest/user-data"},
		{earlyboot.IMDSProvider{Client: earlyboot.NewIMDSClient("http://127.0.0.1:9/")}, "imds", "http://127.0.0.1:9/latest/user-data"},
	}
	for _, tt := range tests {
		s, ok := tt.p.(earlyboot.Sourcer)
		if tt.p.Name() != tt.name || !ok || s.Source() != tt.source {
			t.Errorf("%T: name %q source %q, want %q %q", tt.p, tt.p.Name(), s.Source(), tt.name, tt.source)
		}
	}
}

func TestDefaultProviders(t *testing.T) {
	names := func(ps []earlyboot.Provider) string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Name()+"="+p.(earlyboot.Sourcer).Source())
		}
		return strings.Join(out, " ")
	}
	want := "local-defaults=/local/user-data-defaults.toml local-user-data=/var/lib/gantry/user-data.toml " +
		"fw_cfg=/sys/firmware/qemu_fw_cfg/by_name/opt/gantry/user-data/raw " +
		"config-disk=/dev/disk/by-label/GANTRY-UD:user-data.toml local-overrides=/local/user-data-overrides.toml"
	if got := names(earlyboot.DefaultProviders("GANTRY-UD", false)); got != want {
		t.Errorf("defaults:\n got %s\nwant %s", got, want)
	}
	want = strings.Replace(want, " local-overrides", " imds=http://169.254.169.254/latest/user-data local-overrides", 1)
	if got := names(earlyboot.DefaultProviders("GANTRY-UD", true)); got != want {
		t.Errorf("defaults with IMDS:\n got %s\nwant %s", got, want)
	}
}

func TestProviderHonoursCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	file := writeFile(t, t.TempDir(), "u.toml", []byte(ud))
	for _, p := range []earlyboot.Provider{
		earlyboot.FileProvider{Path: file},
		earlyboot.FwCfgProvider{Sysfs: fwCfgTree(t, []byte(ud))},
		earlyboot.ConfigDiskProvider{Device: file},
		earlyboot.IMDSProvider{Client: earlyboot.NewIMDSClient("http://127.0.0.1:9")},
	} {
		if _, err := p.Fetch(ctx); err == nil || !strings.Contains(err.Error(), "context canceled") {
			t.Errorf("%s: Fetch with a cancelled context = %v", p.Name(), err)
		}
	}
}

// TestConfigDiskFromStandardTools reads images made by genisoimage and
// xorriso, the usual ways to make a config disk, when they are installed.
func TestConfigDiskFromStandardTools(t *testing.T) {
	tools := []struct {
		name string
		args []string
	}{
		{"genisoimage", []string{"-quiet", "-V", "GANTRY-UD", "-R", "-J"}},
		{"genisoimage", []string{"-quiet", "-V", "GANTRY-UD", "-J"}},
		{"genisoimage", []string{"-quiet", "-V", "GANTRY-UD"}},
		{"xorriso", []string{"-as", "mkisofs", "-quiet", "-V", "GANTRY-UD", "-R", "-J"}},
	}
	for _, tool := range tools {
		t.Run(tool.name+" "+strings.Join(tool.args, " "), func(t *testing.T) {
			bin := testsupport.RequireTool(t, tool.name)
			src := t.TempDir()
			writeFile(t, src, "user-data.toml", []byte(ud))
			img := filepath.Join(t.TempDir(), "ud.iso")
			if out, err := exec.Command(bin, append(tool.args, "-o", img, src)...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", tool.name, err, out)
			}
			got, err := earlyboot.ConfigDiskProvider{Device: img, Label: "GANTRY-UD"}.Fetch(context.Background())
			if err != nil || string(got) != ud {
				t.Fatalf("Fetch = %q, %v", got, err)
			}
		})
	}
}
