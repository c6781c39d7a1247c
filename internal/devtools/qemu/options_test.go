package qemu

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/testsupport"
)

func TestKernelCmdline(t *testing.T) {
	tests := []struct {
		name     string
		base     string
		noBridge bool
		extra    []string
		want     string
	}{
		{"adds console and bridge", "ro gantry.roothash=ab12", false, nil,
			"ro gantry.roothash=ab12 console=ttyS0 gantry.api-bridge"},
		{"keeps the build's console", "console=ttyS0,115200n8 ro", false, nil,
			"console=ttyS0,115200n8 ro gantry.api-bridge"},
		{"bridge already there", "ro gantry.api-bridge=1 console=ttyS0", false, nil,
			"ro gantry.api-bridge=1 console=ttyS0"},
		{"no bridge", "ro console=ttyS0", true, []string{"quiet"}, "ro console=ttyS0 quiet"},
		{"extra words split, in order", "ro console=ttyS0", false, []string{"systemd.log_level=debug panic=-1", "x"},
			"ro console=ttyS0 gantry.api-bridge systemd.log_level=debug panic=-1 x"},
		{"ours go before init's arguments", "ro -- systemd.show_status=true", false, []string{"quiet"},
			"ro console=ttyS0 gantry.api-bridge quiet -- systemd.show_status=true"},
		{"trailing --", "ro --", true, nil, "ro console=ttyS0 --"},
		{"quoted value kept verbatim", `dm-mod.create="root,,,ro,0 8 verity 1"  console=hvc0`, true, nil,
			`dm-mod.create="root,,,ro,0 8 verity 1"  console=hvc0`},
		{"empty base", "", false, nil, "console=ttyS0 gantry.api-bridge"},
		{"whitespace and newline from the file", "  ro\n", true, nil, "ro console=ttyS0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := KernelCmdline(tc.base, tc.noBridge, tc.extra); got != tc.want {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// buildDir makes an image build's output directory with stand-in files.
func buildDir(t *testing.T, images ...string) string {
	t.Helper()
	d := t.TempDir()
	for _, f := range append([]string{BuildKernel, BuildInitrd}, images...) {
		if err := os.WriteFile(filepath.Join(d, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(d, BuildCmdline), []byte("ro gantry.roothash=00ff\n"), 0o644)
	return d
}

func TestResolve(t *testing.T) {
	bd := buildDir(t, "gantry-metal-dev-x86_64-0.1.0-abc.img")
	ud := filepath.Join(t.TempDir(), "ud.toml")
	os.WriteFile(ud, []byte("[settings]\n"), 0o644)
	tests := []struct {
		name    string
		opts    Options
		wantErr string
		check   func(t *testing.T, o Options)
	}{
		{
			name: "boot disk by default: the image only, a raw copy",
			opts: Options{BuildDir: bd, RunDir: "run/x"},
			check: func(t *testing.T, o Options) {
				if o.Boot != BootDisk || o.Image != filepath.Join(bd, "gantry-metal-dev-x86_64-0.1.0-abc.img") ||
					o.Kernel != "" || o.Initrd != "" || o.Cmdline != "" || o.DiskMode != diskCopy || o.Debugfs != DefaultDebugfs {
					t.Errorf("resolved %+v", o)
				}
			},
		},
		{
			name: "boot disk needs no kernel in the build directory",
			opts: Options{Image: filepath.Join(bd, "gantry-metal-dev-x86_64-0.1.0-abc.img"), RunDir: "r", Boot: BootDisk, DiskMode: diskCopy},
			check: func(t *testing.T, o Options) {
				if o.Boot != BootDisk || o.Kernel != "" {
					t.Errorf("resolved %+v", o)
				}
			},
		},
		{
			name: "boot files: the build directory fills everything",
			opts: Options{BuildDir: bd, RunDir: "run/x", UserData: ud, Boot: BootFiles},
			check: func(t *testing.T, o Options) {
				if o.Image != filepath.Join(bd, "gantry-metal-dev-x86_64-0.1.0-abc.img") || o.Kernel != filepath.Join(bd, BuildKernel) ||
					o.Initrd != filepath.Join(bd, BuildInitrd) || o.Cmdline != "ro gantry.roothash=00ff" || o.DiskMode != "" {
					t.Errorf("resolved %+v", o)
				}
				if !filepath.IsAbs(o.RunDir) || o.MemoryMiB != 1024 || o.CPUs != 1 || o.GuestPort != 8081 ||
					o.Accel != AccelAuto || o.DiskInterface != DiskVirtio || o.StopTimeout != DefaultStopTimeout {
					t.Errorf("defaults %+v", o)
				}
			},
		},
		{
			name: "explicit files win over the build directory",
			opts: Options{BuildDir: bd, RunDir: "r", Kernel: ud, Cmdline: "console=hvc0", MemoryMiB: 2048, StopTimeout: time.Second},
			check: func(t *testing.T, o Options) {
				if o.Boot != BootFiles || o.Kernel != ud || o.Cmdline != "console=hvc0" || o.MemoryMiB != 2048 || o.StopTimeout != time.Second {
					t.Errorf("resolved %+v", o)
				}
			},
		},
		{name: "boot disk with a kernel", opts: Options{BuildDir: bd, RunDir: "r", Boot: BootDisk, Kernel: ud}, wantErr: "needs boot files"},
		{name: "boot disk on an overlay", opts: Options{BuildDir: bd, RunDir: "r", DiskMode: diskOverlay}, wantErr: "raw image"},
		{name: "bad boot", opts: Options{BuildDir: bd, RunDir: "r", Boot: "pxe"}, wantErr: `boot "pxe"`},
		{name: "boot files without a kernel", opts: Options{Image: ud, RunDir: "r", Boot: BootFiles}, wantErr: "no kernel"},
		{name: "no run directory", opts: Options{BuildDir: bd}, wantErr: "no run directory"},
		{name: "missing build directory", opts: Options{BuildDir: filepath.Join(bd, "nope"), RunDir: "r"}, wantErr: "gantry build"},
		{name: "no image in build directory", opts: Options{BuildDir: buildDir(t), RunDir: "r"}, wantErr: "no gantry-*.img"},
		{name: "no files at all", opts: Options{RunDir: "r"}, wantErr: "no disk image"},
		{name: "missing user data", opts: Options{BuildDir: bd, RunDir: "r", UserData: ud + ".missing"}, wantErr: "user data"},
		{name: "bad accel", opts: Options{BuildDir: bd, RunDir: "r", Accel: "hvf"}, wantErr: "accelerator"},
		{name: "bad disk interface", opts: Options{BuildDir: bd, RunDir: "r", DiskInterface: "ide"}, wantErr: "disk interface"},
		{name: "bad disk mode", opts: Options{BuildDir: bd, RunDir: "r", DiskMode: "snapshot"}, wantErr: "disk mode"},
		{name: "run directory too long for sockets", opts: Options{BuildDir: bd, RunDir: "/" + strings.Repeat("d", 110)}, wantErr: "too long"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := tc.opts.resolve()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, o)
		})
	}
}

func TestFindImageNewest(t *testing.T) {
	bd := buildDir(t, "gantry-metal-dev-x86_64-0.1.0-aaa.img", "gantry-metal-dev-x86_64-0.2.0-bbb.img", "other.img")
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(bd, "gantry-metal-dev-x86_64-0.2.0-bbb.img"), old, old)
	got, err := FindImage(bd)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(got) != "gantry-metal-dev-x86_64-0.1.0-aaa.img" {
		t.Fatalf("chose %s, want the newest", got)
	}
}

func TestArgs(t *testing.T) {
	base := Options{
		Kernel: "/b/vmlinuz", Initrd: "/b/initrd.img", MemoryMiB: 1024, CPUs: 1, GuestPort: 8081,
		DiskInterface: DiskVirtio, UserData: "/ex/user,data.toml",
	}
	tests := []struct {
		name    string
		edit    func(*Options, *launch)
		want    [][]string // adjacent argument pairs that must be present
		wantNot []string
	}{
		{
			name: "TCG, virtio, user data, port forward",
			want: [][]string{
				{"-accel", "tcg"}, {"-smp", "1"}, {"-m", "1024"},
				{"-kernel", "/b/vmlinuz"}, {"-initrd", "/b/initrd.img"}, {"-append", "ro console=ttyS0"},
				{"-drive", "if=none,id=disk0,file=/r/disk.qcow2,format=qcow2,cache=writeback,discard=unmap"},
				{"-device", "virtio-blk-pci,drive=disk0"},
				{"-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:40123-:8081"},
				{"-device", "virtio-net-pci,netdev=n0"},
				{"-fw_cfg", "name=opt/gantry/user-data,file=/ex/user,,data.toml"},
				{"-qmp", "unix:/r/qmp.sock,server=on,wait=off"},
				{"-serial", "chardev:console"},
			},
			wantNot: []string{"-cpu", "-no-reboot"},
		},
		{
			name: "KVM uses the host CPU",
			edit: func(o *Options, l *launch) { l.accel = AccelKVM },
			want: [][]string{{"-accel", "kvm"}, {"-cpu", "host"}},
		},
		{
			name: "NVMe, no user data, no reboot, extra args",
			edit: func(o *Options, l *launch) {
				o.DiskInterface = DiskNVMe
				o.UserData = ""
				o.NoReboot = true
				o.ExtraArgs = []string{"-s"}
			},
			want:    [][]string{{"-device", "nvme,drive=disk0,serial=gantry-disk0"}},
			wantNot: []string{"-fw_cfg", "virtio-blk-pci,drive=disk0"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			l := launch{accel: AccelTCG, cmdline: "ro console=ttyS0", disk: "/r/disk.qcow2", diskFmt: "qcow2",
				hostPort: 40123, qmpSocket: "/r/qmp.sock"}
			if tc.edit != nil {
				tc.edit(&o, &l)
			}
			l.opts = o
			args := l.args()
			for _, pair := range tc.want {
				found := false
				for i := 0; i+1 < len(args); i++ {
					if args[i] == pair[0] && args[i+1] == pair[1] {
						found = true
					}
				}
				if !found {
					t.Errorf("missing %q %q in %q", pair[0], pair[1], args)
				}
			}
			for _, a := range tc.wantNot {
				if slices.Contains(args, a) {
					t.Errorf("unexpected %q in %q", a, args)
				}
			}
			if o.NoReboot && !slices.Contains(args, "-no-reboot") {
				t.Error("no -no-reboot")
			}
			if len(o.ExtraArgs) > 0 && args[len(args)-1] != "-s" {
				t.Error("extra arguments not last")
			}
		})
	}
}

func TestChooseAccel(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "kvm")
	readable := filepath.Join(t.TempDir(), "kvm-rw")
	os.WriteFile(readable, nil, 0o644)
	ok := func() error { return nil }
	slow := func() error { return errors.New("too slow") }
	tests := []struct {
		want, dev string
		probe     func() error
		got       string
		err       bool
	}{
		{AccelAuto, missing, ok, AccelTCG, false},
		{AccelAuto, readable, ok, AccelKVM, false},
		{AccelAuto, readable, slow, AccelTCG, false},
		{AccelAuto, readable, nil, AccelKVM, false},
		{AccelTCG, readable, ok, AccelTCG, false},
		{AccelKVM, readable, slow, AccelKVM, false}, // asked for: no probe
		{AccelKVM, missing, ok, "", true},
	}
	for _, tc := range tests {
		got, why, err := chooseAccel(tc.want, tc.dev, tc.probe)
		if (err != nil) != tc.err || got != tc.got {
			t.Errorf("chooseAccel(%s, %s) = %q (%s), %v; want %q (error %v)", tc.want, filepath.Base(tc.dev), got, why, err, tc.got, tc.err)
		}
	}
}

// TestProbeKVM runs the probe guest under TCG's stand-in check: the probe
// must succeed where KVM works and fail (not hang) where it does not.
func TestProbeKVM(t *testing.T) {
	testsupport.RequireTool(t, DefaultQEMU)
	start := time.Now()
	err := probeKVM(context.Background(), DefaultQEMU, t.TempDir())
	if d := time.Since(start); d > kvmProbeTimeout+2*time.Second {
		t.Errorf("probe took %v", d)
	}
	t.Logf("KVM probe on this host: %v (usable /dev/kvm: %v)", err, kvmUsable(DefaultKVMDevice))
	if !kvmUsable(DefaultKVMDevice) && err == nil {
		t.Error("probe succeeded without /dev/kvm")
	}
}

func TestLockRunDir(t *testing.T) {
	d := t.TempDir()
	l1, err := lockRunDir(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockRunDir(d); err == nil || !strings.Contains(err.Error(), "another node") {
		t.Fatalf("second lock: %v", err)
	}
	l1.Close()
	l2, err := lockRunDir(d)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.Close()
}

func TestParseExtraDisk(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ExtraDisk
		err  string
	}{
		{"scratch:1G", ExtraDisk{Serial: "scratch", Size: 1 << 30}, ""},
		{"d2:512M", ExtraDisk{Serial: "d2", Size: 512 << 20}, ""},
		{"x:4096", ExtraDisk{Serial: "x", Size: 4096}, ""},
		{"scratch", ExtraDisk{}, "want SERIAL:SIZE"},
		{":1G", ExtraDisk{}, "want SERIAL:SIZE"},
		{"a-serial-longer-than-20:1G", ExtraDisk{}, "want SERIAL:SIZE"},
		{"bad,serial:1G", ExtraDisk{}, "want SERIAL:SIZE"},
		{"s:0", ExtraDisk{}, "positive number"},
		{"s:-1G", ExtraDisk{}, "positive number"},
		{"s:1X", ExtraDisk{}, "positive number"},
	} {
		got, err := ParseExtraDisk(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want an error saying %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v %v, want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestPrepareExtraDisks(t *testing.T) {
	dir := t.TempDir()
	o := Options{RunDir: dir, Disks: []ExtraDisk{{Serial: "a", Size: 1 << 20}, {Serial: "b", Size: 2 << 20}}}
	if err := prepareExtraDisks(o); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "disk-a.img"), append(make([]byte, 1<<20-4), "data"...), 0o600)
	// Kept (and grown) on the next run, blank again when fresh.
	o.Disks[0].Size = 4 << 20
	if err := prepareExtraDisks(o); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "disk-a.img"))
	if len(b) != 4<<20 || string(b[1<<20-4:1<<20]) != "data" {
		t.Errorf("kept disk: %d bytes, data %q", len(b), b[1<<20-4:1<<20])
	}
	o.Fresh = true
	if err := prepareExtraDisks(o); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "disk-a.img")); bytes.Contains(b, []byte("data")) {
		t.Error("a fresh run kept the disk's data")
	}
	args := strings.Join(extraDiskArgs(o), " ")
	for _, w := range []string{"file=" + filepath.Join(dir, "disk-b.img") + ",format=raw", "virtio-blk-pci,drive=xdisk1,serial=b"} {
		if !strings.Contains(args, w) {
			t.Errorf("args %q lack %q", args, w)
		}
	}
	o.Disks = append(o.Disks, ExtraDisk{Serial: "a", Size: 1})
	if err := prepareExtraDisks(o); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a serial twice: %v", err)
	}
}

func TestNICArgs(t *testing.T) {
	for _, tc := range []struct {
		nic  NIC
		want string
		err  string
	}{
		{NIC{Net: netip.MustParsePrefix("10.0.3.0/24")}, "-netdev user,id=n1,net=10.0.3.0/24 -device virtio-net-pci,netdev=n1", ""},
		{NIC{Tap: "gtap1", MAC: "52:54:00:ab:cd:77"}, "-netdev tap,id=n1,ifname=gtap1,script=no,downscript=no -device virtio-net-pci,netdev=n1,mac=52:54:00:ab:cd:77", ""},
		{NIC{Tap: "gtap1", Ports: 2}, "", "no forwards or ports"},
	} {
		if err := tc.nic.check(); tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%+v: %v, want %q", tc.nic, err, tc.err)
			}
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(tc.nic.args(1, 8080), " "); got != tc.want {
			t.Errorf("%+v:\n%s\nwant\n%s", tc.nic, got, tc.want)
		}
	}
}
