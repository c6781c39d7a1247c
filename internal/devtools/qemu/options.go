package qemu

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gantry-os/gantry/internal/boot/initrd/bootinit"
)

// Defaults of Options.
const (
	DefaultQEMU        = "qemu-system-x86_64"
	DefaultQEMUImg     = "qemu-img"
	DefaultMemoryMiB   = 1024
	DefaultCPUs        = 1
	DefaultGuestPort   = 8081
	DefaultStopTimeout = 30 * time.Second
	// UserDataFwCfg is the fw_cfg entry early-boot-config reads
	// (/sys/firmware/qemu_fw_cfg/by_name/opt/gantry/user-data/raw).
	UserDataFwCfg = "opt/gantry/user-data"
	// NetTOMLFwCfg is the fw_cfg entry netdog reads a net.toml from
	// (/sys/firmware/qemu_fw_cfg/by_name/opt/gantry/net.toml/raw).
	NetTOMLFwCfg = "opt/gantry/net.toml"
	// BridgeKernelArg turns on the guest's api-bridge unit
	// (ConditionKernelCommandLine=gantry.api-bridge).
	BridgeKernelArg = "gantry.api-bridge"
	// CmdlineFwCfg is the fw_cfg entry from which the UEFI chain's
	// selector adds kernel parameters (bootinit.FwCfgCmdline).
	CmdlineFwCfg = "opt/gantry/cmdline"
	// DefaultOVMF is Debian's OVMF build for QEMU's -bios (package ovmf).
	DefaultOVMF = "/usr/share/ovmf/OVMF.fd"
)

// Firmware for Options.Firmware.
const (
	// FirmwareBIOS is QEMU's default firmware (SeaBIOS): QEMU loads the
	// kernel and initramfs that gantry run's boot loader chose (or the
	// files given), with -kernel, -initrd and -append.
	FirmwareBIOS = "bios"
	// FirmwareUEFI is OVMF: it boots the disk's ESP (systemd-boot, then
	// the kernel with the selector initramfs, which chooses the set, takes
	// a try and kexecs the set's kernel). gantry run loads nothing, and a
	// guest reboot goes through the whole chain again inside QEMU.
	FirmwareUEFI = "uefi"
)

// Names of the files an image build writes into its output directory.
const (
	BuildKernel  = "vmlinuz"
	BuildInitrd  = "initrd.img"
	BuildCmdline = "cmdline"
	// BuildImageGlob matches gantry-<variant>-<arch>-<version>-<commit>.img.
	BuildImageGlob = "gantry-*.img"
)

// Names of the files in a run directory.
const (
	RunAPISocket = "api.sock"
	RunQMPSocket = "qmp.sock"
	// RunQMPEventsSocket is a second QMP monitor, from which the node reads
	// why QEMU ended (a guest reboot or a power-off) when booting from disk.
	RunQMPEventsSocket = "qmp-events.sock"
	RunConsoleLog      = "console.log"
	RunQEMULog         = "qemu.log"
	RunLock            = "lock"
)

// Accelerators for Options.Accel.
const (
	AccelAuto = "auto"
	AccelKVM  = "kvm"
	AccelTCG  = "tcg"
)

// Disk buses for Options.DiskInterface.
const (
	DiskVirtio = "virtio"
	DiskNVMe   = "nvme"
)

// Options describe a node to boot. BuildDir fills in Image (and, when
// booting files, Kernel, Initrd and Cmdline) where they are empty; RunDir
// is required.
type Options struct {
	// BuildDir is an image build's output directory, e.g. build/metal-dev.
	BuildDir string
	// Boot is BootDisk (the boot loader: the set the disk's GPT flags
	// choose, with that set's kernel, initramfs and command line), BootFiles
	// (Kernel, Initrd and Cmdline, directly), BootFirmware (Firmware
	// "uefi": the firmware boots the disk), or "": firmware with UEFI, else
	// files when Kernel, Initrd or Cmdline is given, else disk.
	Boot string
	// Firmware is FirmwareBIOS (default) or FirmwareUEFI, and OVMF the
	// UEFI firmware file for -bios (default DefaultOVMF). With UEFI,
	// gantry.api-bridge and Append reach the guest through fw_cfg
	// CmdlineFwCfg, which the selector adds to the set's command line.
	Firmware, OVMF string
	// Image is the raw disk image; Kernel and Initrd are booted directly
	// when booting files.
	Image, Kernel, Initrd string
	// Cmdline is the kernel command line when booting files; empty means
	// the content of BuildDir/cmdline.
	Cmdline string
	// Append is added to the kernel command line, after Cmdline and the
	// arguments Start adds (console=ttyS0 when no console= is given, and
	// gantry.api-bridge unless NoAPIBridge).
	Append []string
	// NoAPIBridge leaves gantry.api-bridge off the command line.
	NoAPIBridge bool

	// RunDir holds the node's disk, sockets and logs.
	RunDir string
	// Fresh discards the disk a previous run left in RunDir, so the node
	// boots for the first time again. Without it, the disk is kept as
	// long as it was made from the same image file (path, size, time).
	Fresh bool
	// DiskMode is "overlay" (qcow2 backed by Image; needs qemu-img),
	// "copy" (sparse copy of Image) or "": copy when booting from the disk
	// (the boot loader reads and writes it as a raw image), else overlay
	// when qemu-img exists.
	DiskMode string
	// DiskInterface is "virtio" (default) or "nvme".
	DiskInterface string
	// DiskSize, when above zero, is the size in bytes of a new disk: the
	// image, then zeros, which the node's data partition grows into at
	// first boot. At least the image's size. A kept disk is not resized.
	DiskSize int64

	// UserData is a user-data file passed as fw_cfg opt/gantry/user-data;
	// empty passes none.
	UserData string
	// NetTOML is a net.toml passed as fw_cfg opt/gantry/net.toml, the
	// node's network configuration (docs/networking.md); empty passes none,
	// and the node takes DHCP on its first interface.
	NetTOML string
	// NICs are network interfaces after the first (eth1, eth2, ...), each
	// on a user-mode network of its own.
	NICs []NIC
	// Forwards are TCP ports of the host's 127.0.0.1 forwarded to the
	// guest's eth0, besides the API bridge's: a host container's SSH or
	// TLS port.
	Forwards []Forward
	// Disks are blank disks beside the OS disk (vdb, vdc, ... on
	// virtio-blk), each with a serial number.
	Disks []ExtraDisk

	// UpdateRepo, when set, is a local update repository for the node, a
	// development repository (tufrepo.EnsureDev) such as gantry run keeps
	// in <run dir>/repo. Start makes its key and root.json when they are
	// missing, publishes the build's release (BuildDir's build.json and
	// boot, root and hash images) when the repository does not offer it
	// yet, serves it on the host's 127.0.0.1 for as long as the node runs,
	// and adds its URLs (http://10.0.2.2:PORT/...) to the user data unless
	// the user data names a repository (AddRepoURLs). The image trusts the
	// repository only when built with its root.json (gantry build
	// --root-json). Needs BuildDir.
	UpdateRepo string
	// UpdateRepoPort is the repository's port on 127.0.0.1; 0 means the
	// port this run directory's node was given before (RunRepoPort), else
	// a free one.
	UpdateRepoPort int

	// Containers, when set, is a folder of container image builds
	// (<name>/oci layouts, gantry container build's output: Gantry's admin
	// and control images). Start runs a real registry (Debian's
	// docker-registry) on the host's 127.0.0.1 with its storage in
	// <run dir>/registry, publishes every layout's image there under
	// gantry-os/ as the layout names it (gantry-os/gantry-admin:v0.1.0),
	// and adds a settings.container-registry mirror for ghcr.io (the
	// variants' default sources) at http://10.0.2.2:PORT to the user data,
	// unless the user data has a mirror for ghcr.io or "*" (AddMirror).
	// A folder that does not exist publishes nothing; the registry still
	// runs.
	Containers string
	// RegistryPort is the registry's port on 127.0.0.1; 0 means the port
	// this run directory's node was given before (RunRegistryPort), else
	// a free one.
	RegistryPort int

	// MemoryMiB and CPUs size the VM (defaults 1024 and 1).
	MemoryMiB, CPUs int
	// Accel is "auto" (default: KVM when /dev/kvm opens read-write), "kvm"
	// or "tcg".
	Accel string
	// NoReboot makes a guest reboot end the node instead of rebooting it
	// (through the boot loader when booting from the disk).
	NoReboot bool
	// GuestPort is the api-bridge's port in the guest (default 8081).
	GuestPort int
	// HostPort is the host end of the port forward on 127.0.0.1; zero
	// picks a free port.
	HostPort int
	// QEMU, QEMUImg and Debugfs name the programs (defaults
	// qemu-system-x86_64, qemu-img and debugfs, looked up in PATH).
	QEMU, QEMUImg, Debugfs string
	// ExtraArgs are appended to QEMU's arguments.
	ExtraArgs []string

	// Console, when set, also receives the serial console.
	Console io.Writer
	// StopTimeout is how long Stop waits for the guest to power off
	// before it quits QEMU (default 30s).
	StopTimeout time.Duration
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// resolve fills in defaults and the build directory's files, and checks
// that the inputs exist.
func (o Options) resolve() (Options, error) {
	if o.RunDir == "" {
		return o, errors.New("no run directory")
	}
	explicitFiles := o.Kernel != "" || o.Initrd != "" || o.Cmdline != ""
	switch o.Firmware {
	case "", FirmwareBIOS:
		o.Firmware = FirmwareBIOS
	case FirmwareUEFI:
		if explicitFiles || (o.Boot != "" && o.Boot != BootFirmware) {
			return o, errors.New("firmware uefi: the firmware boots the disk (systemd-boot, then the selector); " +
				"a kernel, initrd, command line or another boot source does not apply")
		}
		o.Boot = BootFirmware
		if o.OVMF == "" {
			o.OVMF = DefaultOVMF
		}
		if fi, err := os.Stat(o.OVMF); err != nil || fi.IsDir() {
			return o, fmt.Errorf("firmware uefi: no OVMF firmware file %s (on Debian: apt-get install ovmf)", o.OVMF)
		}
	default:
		return o, fmt.Errorf("firmware %q: want bios or uefi", o.Firmware)
	}
	switch o.Boot {
	case BootFirmware:
		if o.Firmware != FirmwareUEFI {
			return o, errors.New("boot firmware: needs firmware uefi")
		}
	case "":
		o.Boot = BootDisk
		if explicitFiles {
			o.Boot = BootFiles
		}
	case BootFiles:
	case BootDisk:
		if explicitFiles {
			return o, errors.New("boot disk: the kernel, initrd and command line come from the disk's BOOT partition; " +
				"a kernel, initrd or command line given explicitly needs boot files")
		}
	default:
		return o, fmt.Errorf("boot %q: want disk, files or firmware", o.Boot)
	}
	if o.Boot == BootDisk {
		switch o.DiskMode {
		case "":
			o.DiskMode = diskCopy
		case diskOverlay:
			return o, errors.New("disk mode overlay: the boot loader reads and writes the disk as a raw image; " +
				"use disk mode copy, or boot files (--kernel, --initrd, --cmdline)")
		}
	}
	if o.BuildDir != "" {
		fill := func(p *string, name string) {
			if *p == "" {
				*p = filepath.Join(o.BuildDir, name)
			}
		}
		if o.Boot == BootFiles {
			fill(&o.Kernel, BuildKernel)
			fill(&o.Initrd, BuildInitrd)
		}
		if o.Image == "" {
			img, err := FindImage(o.BuildDir)
			if err != nil {
				return o, err
			}
			o.Image = img
		}
		if o.Boot == BootFiles && o.Cmdline == "" {
			b, err := os.ReadFile(filepath.Join(o.BuildDir, BuildCmdline))
			if err != nil {
				return o, fmt.Errorf("kernel command line: %w", err)
			}
			o.Cmdline = strings.TrimSpace(string(b))
		}
	}
	type input struct{ what, path string }
	files := []input{{"disk image", o.Image}}
	if o.Boot == BootFiles {
		files = append(files, input{"kernel", o.Kernel}, input{"initrd", o.Initrd})
	}
	for _, f := range files {
		if f.path == "" {
			return o, fmt.Errorf("no %s (give a build directory or the file)", f.what)
		}
		if fi, err := os.Stat(f.path); err != nil {
			return o, fmt.Errorf("%s: %w", f.what, err)
		} else if fi.IsDir() {
			return o, fmt.Errorf("%s %s is a directory", f.what, f.path)
		}
	}
	if o.UserData != "" {
		if _, err := os.Stat(o.UserData); err != nil {
			return o, fmt.Errorf("user data: %w", err)
		}
	}
	if o.NetTOML != "" {
		if _, err := os.Stat(o.NetTOML); err != nil {
			return o, fmt.Errorf("net.toml: %w", err)
		}
	}
	for i, nic := range o.NICs {
		if err := nic.check(); err != nil {
			return o, fmt.Errorf("NIC %d: %w", i+1, err)
		}
	}
	if o.UpdateRepo != "" && o.BuildDir == "" {
		return o, errors.New("update repository: publishing the booted release needs the image's build directory")
	}
	if o.RegistryPort < 0 || o.RegistryPort > 65535 {
		return o, fmt.Errorf("registry port %d: want 0-65535", o.RegistryPort)
	}
	if o.UpdateRepoPort < 0 || o.UpdateRepoPort > 65535 {
		return o, fmt.Errorf("update repository port %d: want 0-65535", o.UpdateRepoPort)
	}
	if o.MemoryMiB == 0 {
		o.MemoryMiB = DefaultMemoryMiB
	}
	if o.CPUs == 0 {
		o.CPUs = DefaultCPUs
	}
	if o.GuestPort == 0 {
		o.GuestPort = DefaultGuestPort
	}
	if o.QEMU == "" {
		o.QEMU = DefaultQEMU
	}
	if o.QEMUImg == "" {
		o.QEMUImg = DefaultQEMUImg
	}
	if o.Debugfs == "" {
		o.Debugfs = DefaultDebugfs
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	if o.Accel == "" {
		o.Accel = AccelAuto
	}
	switch o.Accel {
	case AccelAuto, AccelKVM, AccelTCG:
	default:
		return o, fmt.Errorf("accelerator %q: want auto, kvm or tcg", o.Accel)
	}
	if o.DiskInterface == "" {
		o.DiskInterface = DiskVirtio
	}
	switch o.DiskInterface {
	case DiskVirtio, DiskNVMe:
	default:
		return o, fmt.Errorf("disk interface %q: want virtio or nvme", o.DiskInterface)
	}
	switch o.DiskMode {
	case "", diskOverlay, diskCopy:
	default:
		return o, fmt.Errorf("disk mode %q: want overlay or copy", o.DiskMode)
	}
	if o.DiskSize < 0 {
		return o, fmt.Errorf("disk size %d: must not be negative", o.DiskSize)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	abs := func(p *string) error {
		if *p == "" {
			return nil
		}
		a, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("path %s: %w", *p, err)
		}
		*p = a
		return nil
	}
	for _, p := range []*string{&o.Image, &o.Kernel, &o.Initrd, &o.UserData, &o.NetTOML, &o.RunDir, &o.OVMF, &o.BuildDir, &o.UpdateRepo, &o.Containers} {
		if err := abs(p); err != nil {
			return o, err
		}
	}
	// sun_path holds 108 bytes with the terminating NUL.
	if l := len(filepath.Join(o.RunDir, RunAPISocket)); l > 107 {
		return o, fmt.Errorf("run directory %s is too long for a Unix socket path (%d bytes; at most 107)", o.RunDir, l)
	}
	return o, nil
}

// FindImage returns the disk image in an image build's output directory:
// the one gantry-*.img file, or the newest when there are several.
func FindImage(buildDir string) (string, error) {
	matches, err := filepath.Glob(filepath.Join(buildDir, BuildImageGlob))
	if err != nil {
		return "", fmt.Errorf("find disk image: %w", err)
	}
	if len(matches) == 0 {
		if _, err := os.Stat(buildDir); err != nil {
			return "", fmt.Errorf("build directory: %w (run `gantry build` first)", err)
		}
		return "", fmt.Errorf("no %s in %s (run `gantry build` first)", BuildImageGlob, buildDir)
	}
	type cand struct {
		path string
		mod  time.Time
	}
	var cs []cand
	for _, m := range matches {
		fi, err := os.Stat(m)
		if err != nil || fi.IsDir() {
			continue
		}
		cs = append(cs, cand{m, fi.ModTime()})
	}
	if len(cs) == 0 {
		return "", fmt.Errorf("no disk image file in %s", buildDir)
	}
	sort.Slice(cs, func(i, j int) bool {
		if !cs[i].mod.Equal(cs[j].mod) {
			return cs[i].mod.After(cs[j].mod)
		}
		return cs[i].path > cs[j].path
	})
	return cs[0].path, nil
}

// FirmwareCmdline is what the UEFI chain's selector adds to the chosen
// set's command line (through fw_cfg): gantry.api-bridge unless noBridge,
// then extra. The set's line names its consoles already.
func FirmwareCmdline(noBridge bool, extra []string) string {
	var add []string
	if !noBridge {
		add = append(add, BridgeKernelArg)
	}
	for _, e := range extra {
		add = append(add, strings.Fields(e)...)
	}
	return strings.Join(add, " ")
}

// KernelCmdline is the command line Start boots with: base, then
// console=ttyS0 when base names no console, then gantry.api-bridge unless
// noBridge (or already there), then extra. Base is kept verbatim (quoted
// values included); the additions go before a "--", whose arguments are
// init's.
func KernelCmdline(base string, noBridge bool, extra []string) string {
	words := bootinit.SplitCmdline(base) // the kernel's parameters, without init's
	has := func(pred func(string) bool) bool {
		return slices.ContainsFunc(words, pred)
	}
	var add []string
	if !has(func(w string) bool { return strings.HasPrefix(w, "console=") }) {
		add = append(add, "console=ttyS0")
	}
	if !noBridge && !has(func(w string) bool { return w == BridgeKernelArg || strings.HasPrefix(w, BridgeKernelArg+"=") }) {
		add = append(add, BridgeKernelArg)
	}
	for _, e := range extra {
		add = append(add, strings.Fields(e)...)
	}
	return bootinit.InsertParams(base, add)
}
