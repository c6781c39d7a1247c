package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/pkg/apiclient"
)

// Defaults of `gantry run`.
const (
	DefaultBuildDir    = "build/metal-dev"
	DefaultUserData    = "examples/user-data.toml"
	DefaultBootTimeout = 10 * time.Minute
	// DefaultContainers is where gantry container build puts its images.
	DefaultContainers = "build/containers"
)

// NewCommand returns `gantry run`.
func NewCommand() *cobra.Command {
	var (
		o                    Options
		echo, noUserData     bool
		bootTimeout          time.Duration
		logLevel, diskMode   string
		boot                 string
		userData, runDirFlag string
		repoDir              string
		noRepo, noRegistry   bool
		containers           string
		nics, forwards       []string
		disks                []string
	)
	var diskSize string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Boot a Gantry image under QEMU and serve its API on a local socket",
		Long: `run boots an image build's output (gantry build) under qemu-system-x86_64, on one vCPU, KVM
when /dev/kvm is usable and TCG otherwise. It acts as the node's boot loader, as GRUB does
on a Bottlerocket node: it picks partition set A or B from the disk's GPT flags (gptprio),
takes a try, and boots the kernel, initramfs and command line of that set's BOOT
partition. When the guest reboots, it picks again, so updates and their automatic
rollback work. --kernel, --initrd or --cmdline (or --boot files) boot those files
instead, from the build directory unless given. --firmware uefi boots the disk through
OVMF instead: systemd-boot on the ESP starts the selector, which chooses the set and
kexecs its kernel; gantry run then loads nothing.

The disk image is not written: the node runs on a sparse copy in the run directory (or,
when booting files, a qcow2 overlay), which a later run of the same image boots again,
datastore included (--fresh starts over). User data goes in through fw_cfg, and so does
--net-toml. The guest's eth0 is on QEMU's user network (10.0.2.0/24, DHCP, DNS at
10.0.2.3, the host at 10.0.2.2), which the node configures itself, as any machine.

The node's settings API is on <run dir>/api.sock, through QEMU's user-network port
forward to the guest's api-bridge. The serial console is logged to <run dir>/console.log.
run waits until the API answers, prints how to use it, and powers the node off on Ctrl-C
(a second Ctrl-C quits QEMU at once).

run also serves the node a local update repository, <run dir>/repo (--update-repo): a
development repository whose one key, made once, is in its keys/ folder (gantry repo init
--dev makes the same). It publishes the booted build's release there when the repository
does not offer it yet, serves it on 127.0.0.1 (the guest's 10.0.2.2) for as long as the
node runs, and adds its URLs to the user data unless the user data names a repository.
The image trusts it when built with --root-json <run dir>/repo/metadata/root.json, as
make run does. --no-update-repo turns this off.

run also runs a local OCI registry for the node's host containers: Debian's docker-registry
on 127.0.0.1, its storage in <run dir>/registry. It publishes the images gantry container
build made (--containers, default build/containers when it exists: the admin and control
images, which make run builds) under gantry-os/, and adds to the user data a settings.container-registry
mirror for ghcr.io, the registry the variant's default host container sources name,
unless the user data has one. The node then pulls ghcr.io/gantry-os/gantry-admin:v0.1.0
from this registry. --no-registry turns this off.`,
		Example: `  gantry run                                   # build/metal-dev, examples/user-data.toml
  bin/apiclient --socket-path run/metal-dev/api.sock get settings
  gantry run --fresh --console --user-data my.toml
  gantry run --kernel vmlinuz --initrd initrd.img --image disk.img --cmdline "$(cat cmdline)" --run-dir /tmp/n1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := cli.Logger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return cli.UsageError{Err: err}
			}
			o.Logger = log
			o.DiskMode = diskMode
			if o.DiskSize, err = ParseSize(diskSize); err != nil {
				return cli.UsageError{Err: fmt.Errorf("--disk-size: %w", err)}
			}
			switch boot {
			case "auto":
				o.Boot = ""
			case BootDisk, BootFiles:
				o.Boot = boot
			default:
				return cli.UsageError{Err: fmt.Errorf("--boot %q: want auto, disk or files", boot)}
			}
			explicit := o.Image != "" && o.Kernel != "" && o.Initrd != "" && o.Cmdline != ""
			if explicit && !cmd.Flags().Changed("build-dir") {
				o.BuildDir = ""
			}
			o.RunDir = runDirFlag
			if o.RunDir == "" {
				name := "node"
				if o.BuildDir != "" {
					name = filepath.Base(filepath.Clean(o.BuildDir))
				}
				o.RunDir = filepath.Join("run", name)
			}
			if !noUserData {
				o.UserData = userData
			}
			for _, s := range nics {
				nic, err := ParseNIC(s)
				if err != nil {
					return cli.UsageError{Err: err}
				}
				o.NICs = append(o.NICs, nic)
			}
			for _, s := range forwards {
				fw, err := ParseForward(s)
				if err != nil {
					return cli.UsageError{Err: err}
				}
				o.Forwards = append(o.Forwards, fw)
			}
			for _, s := range disks {
				d, err := ParseExtraDisk(s)
				if err != nil {
					return cli.UsageError{Err: err}
				}
				o.Disks = append(o.Disks, d)
			}
			o.UpdateRepo = updateRepoDir(o, repoDir, noRepo)
			o.Containers = containersDir(containers, cmd.Flags().Changed("containers"), noRegistry)
			if echo {
				o.Console = cmd.OutOrStdout()
			}
			return runNode(cmd.Context(), o, bootTimeout, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.BuildDir, "build-dir", DefaultBuildDir, "image build output: vmlinuz, initrd.img, cmdline, gantry-*.img")
	f.StringVar(&boot, "boot", "auto", "disk (the boot loader: the set the GPT flags choose), files (--kernel, --initrd, --cmdline), or auto (files when one is given)")
	f.StringVar(&o.Firmware, "firmware", FirmwareBIOS, "bios (gantry run is the boot loader) or uefi (OVMF boots the disk: systemd-boot, then the selector; reboots stay in QEMU)")
	f.StringVar(&o.OVMF, "ovmf", DefaultOVMF, "OVMF firmware file for --firmware uefi (Debian package ovmf)")
	f.StringVar(&o.Image, "image", "", "disk image (default: the build directory's gantry-*.img)")
	f.StringVar(&o.Kernel, "kernel", "", "kernel (default: <build dir>/vmlinuz)")
	f.StringVar(&o.Initrd, "initrd", "", "initramfs (default: <build dir>/initrd.img)")
	f.StringVar(&o.Cmdline, "cmdline", "", "kernel command line (default: the content of <build dir>/cmdline)")
	f.StringArrayVar(&o.Append, "append", nil, "add to the kernel command line (repeatable)")
	f.StringVar(&runDirFlag, "run-dir", "", "the node's disk, sockets and logs (default: run/<build dir name>)")
	f.StringVar(&userData, "user-data", DefaultUserData, "user-data TOML passed through fw_cfg (first boot)")
	f.BoolVar(&noUserData, "no-user-data", false, "pass no user data")
	f.StringVar(&o.NetTOML, "net-toml", "", "net.toml passed through fw_cfg: the node's network configuration (default: DHCP on eth0)")
	f.StringArrayVar(&nics, "nic", nil, "another NIC (eth1, eth2, ...) on a user network of its own: SUBNET[,mac=MAC], e.g. 10.0.3.0/24 (repeatable)")
	f.StringArrayVar(&disks, "disk", nil, "a blank extra disk SERIAL:SIZE, e.g. scratch:1G, kept in <run dir>/disk-SERIAL.img (repeatable; for the disks bootstrap container)")
	f.StringArrayVar(&forwards, "forward", nil, "forward a TCP port of the host's 127.0.0.1 to the guest's eth0: HOST:GUEST, e.g. 2222:22 for the admin container's SSH (repeatable)")
	f.StringVar(&repoDir, "update-repo", "", "local update repository to publish the build's release to and serve the node (default: <run dir>/repo, when booting a build directory)")
	f.BoolVar(&noRepo, "no-update-repo", false, "serve no update repository")
	f.IntVar(&o.UpdateRepoPort, "update-repo-port", 0, "port of the update repository on 127.0.0.1 (default: the one this run directory used before, else a free one)")
	f.StringVar(&containers, "containers", DefaultContainers, "container image builds (<name>/oci, gantry container build's output) to publish to the node's local registry")
	f.BoolVar(&noRegistry, "no-registry", false, "run no local registry (and add no mirror to the user data)")
	f.IntVar(&o.RegistryPort, "registry-port", 0, "port of the local registry on 127.0.0.1 (default: the one this run directory used before, else a free one)")
	f.BoolVar(&o.Fresh, "fresh", false, "discard the disk of a previous run: boot for the first time")
	f.StringVar(&diskMode, "disk-mode", "", "copy (sparse copy of the image) or overlay (qcow2 on the image; boot files only) (default: copy when booting from disk, else overlay when qemu-img exists)")
	f.StringVar(&o.DiskInterface, "disk-interface", DiskVirtio, "virtio or nvme")
	f.StringVar(&diskSize, "disk-size", "", "size of a new disk, e.g. 4G (default: the image's); the node grows DATA into the rest at first boot")
	f.IntVar(&o.MemoryMiB, "memory", DefaultMemoryMiB, "guest memory in MiB")
	f.IntVar(&o.CPUs, "cpus", DefaultCPUs, "vCPUs (1 is fastest under TCG)")
	f.StringVar(&o.Accel, "accel", AccelAuto, "auto (KVM when /dev/kvm is usable), kvm or tcg")
	f.BoolVar(&o.NoReboot, "no-reboot", false, "end the node when the guest reboots")
	f.IntVar(&o.HostPort, "host-port", 0, "host port on 127.0.0.1 forwarded to the guest's api-bridge (default: a free one)")
	f.BoolVar(&echo, "console", false, "echo the serial console here too")
	f.DurationVar(&bootTimeout, "boot-timeout", DefaultBootTimeout, "how long to wait for the API to answer")
	f.DurationVar(&o.StopTimeout, "stop-timeout", DefaultStopTimeout, "how long to wait for the guest to power off before quitting QEMU")
	f.StringVar(&o.QEMU, "qemu", DefaultQEMU, "QEMU system emulator")
	f.StringVar(&logLevel, "log-level", "info", "trace, debug, info, warn or error")
	return cmd
}

// updateRepoDir is the update repository gantry run serves: --update-repo
// (flag), else <run dir>/repo when the image comes from a build directory,
// whose release the repository publishes; none with --no-update-repo (off).
// An explicit --update-repo without a build directory is left for Start
// to refuse.
func updateRepoDir(o Options, flag string, off bool) string {
	switch {
	case off:
		return ""
	case flag != "":
		return flag
	case o.BuildDir != "" && o.Image == "":
		return filepath.Join(o.RunDir, RunRepoDir)
	}
	return ""
}

// containersDir is Options.Containers for gantry run: --containers when
// given, else the default folder when it exists (nothing was built: no
// registry), none with --no-registry.
func containersDir(flag string, given, off bool) string {
	if off {
		return ""
	}
	if !given {
		if _, err := os.Stat(flag); err != nil {
			return ""
		}
	}
	return flag
}

// runNode is `gantry run` once the flags are read.
func runNode(ctx context.Context, o Options, bootTimeout time.Duration, out io.Writer) error {
	// Our own signal channel: the first signal starts an orderly power-off,
	// the next one cuts it short.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-ctx.Done():
		}
	}()

	n, err := Start(ctx, o)
	if err != nil {
		return err
	}
	stop := func() error {
		fmt.Fprintln(out, "Powering the node off (Ctrl-C again to quit QEMU at once)...")
		sctx, scancel := context.WithCancel(context.Background())
		defer scancel()
		go func() {
			select {
			case <-sigs:
				scancel()
			case <-sctx.Done():
			}
		}()
		if err := n.Stop(sctx); err != nil {
			return err
		}
		n.Wait()
		fmt.Fprintln(out, "Node stopped; its disk stays in", n.RunDir())
		return nil
	}

	boot := "first boot"
	if n.DiskReused() {
		boot = "existing disk (not a first boot: user data is not read again; --fresh starts over)"
	}
	fmt.Fprintf(out, "Booting %s with %s, %s.\n", rel(n.Image()), n.Accel(), boot)
	if b := n.Boot(); b.Set != "" {
		fmt.Fprintf(out, "Boot loader: set %s (%s).\n", b.Set, b.Before)
	} else if b.Firmware != "" {
		fmt.Fprintf(out, "UEFI: %s boots the disk; the selector's choice is on the console.\n", b.Firmware)
	}
	fmt.Fprintf(out, "Console: %s  (tail -f it, or run with --console)\n", n.ConsolePath())

	wctx, wcancel := context.WithTimeout(ctx, bootTimeout)
	err = n.WaitForAPI(wctx)
	wcancel()
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return stop()
		}
		serr := stop()
		return errors.Join(err, serr)
	}

	// The hints read settings and check for updates: wait for the boot to
	// commit the node's configuration first (a few seconds after the API
	// answers), but not for ever, since refused user data never commits.
	fmt.Fprintln(out, "The API answers; waiting for the node to commit its settings...")
	sctx, scancel := context.WithTimeout(ctx, settingsTimeout)
	serr := n.WaitForSettings(sctx)
	scancel()
	if ctx.Err() != nil {
		return stop()
	}
	notice := ""
	if serr != nil {
		notice = fmt.Sprintf("\nThe node has committed no settings yet (%v);\nsee %s for its boot steps.\n", serr, rel(n.ConsolePath()))
	}

	api := "bin/apiclient --socket-path " + rel(n.SocketPath())
	check, noRoot := "", false
	if n.UpdateRepo() != nil {
		check = `   # "update_state": "Idle", "chosen_update": null: nothing newer to take`
		if noRoot = updatesOff(ctx, n); noRoot {
			check = "   # 503 with this image: see below"
		}
	}
	fmt.Fprintf(out, `%s
Gantry node up (%s); its settings API is on %s.
In another terminal:

  %s get settings
  %s set motd="hello from the API"
  %s -u /os
  %s update check%s
%s%s
Console log: %s
Ctrl-C powers the node off; its disk stays in %s for the next run.
`, notice, n.Accel(), rel(n.SocketPath()), api, api, api, api, check, repoHints(n.UpdateRepo(), n.DiskReused(), noRoot),
		registryHints(n.Registry(), n.DiskReused()), rel(n.ConsolePath()), rel(n.RunDir()))

	select {
	case <-ctx.Done():
		return stop()
	case <-n.Exited():
		err := n.Wait()
		fmt.Fprintln(out, "The node powered off.")
		return err
	}
}

// settingsTimeout bounds how long gantry run waits for the node's settings
// once the API answers.
const settingsTimeout = 60 * time.Second

// updatesOff reports whether the node's update API is off (503), which it
// is when the image has no trusted root.json.
func updatesOff(ctx context.Context, n *Node) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	code, _, err := apiclient.New(n.SocketPath()).Do(ctx, http.MethodGet, "/updates/status", nil)
	return err == nil && code == http.StatusServiceUnavailable
}

// repoHints is what gantry run prints about the node's update repository
// (nil: none): where it is, and what keeps the node from using it; noRoot
// tells that the image trusts no repository at all (its update API is off).
func repoHints(r *UpdateRepo, diskReused, noRoot bool) string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	published := "offered already"
	if r.Published {
		published = "published now"
	}
	fmt.Fprintf(&b, "\nUpdate repository: %s, the build's release %s %s %s: %s.\n", rel(r.Dir), r.Variant, r.Arch, r.Version, published)
	fmt.Fprintf(&b, "  at %s and %s (the node's %s and %s).\n", r.Host.Metadata, r.Host.Targets, r.Guest.Metadata, r.Guest.Targets)
	fmt.Fprintf(&b, "  Publish a newer build with: gantry repo add-release --repo %s --key %s ... (docs/running.md#updating-the-node)\n",
		rel(r.Dir), rel(r.KeyPath))
	switch {
	case noRoot:
		fmt.Fprintf(&b, "  The image trusts no update repository, so update check answers 503: build with --root-json %s (make run does).\n", rel(r.RootPath()))
	case r.Created:
		fmt.Fprintf(&b, "  The repository is new, so this image does not trust it: build with --root-json %s (make run does).\n", rel(r.RootPath()))
	case r.UserData == UserDataRepoOwn:
		b.WriteString("  The user data names its own update repository, so the node does not use this one.\n")
	case r.UserData == UserDataRepoNone:
		b.WriteString("  There is no user data, so the node was not told of this repository.\n")
	case diskReused && r.PortChanged:
		b.WriteString("  Its port changed since the node's first boot, whose settings name the old one (--fresh starts over).\n")
	}
	return b.String()
}

// registryHints is what gantry run prints about the node's local registry
// (nil: none): where it is, what it published, and whether the node uses
// it.
func registryHints(r *LocalRegistry, diskReused bool) string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nLocal registry: %s (the node's %s), storage in its run directory.\n", r.Host, r.Guest)
	if len(r.Images) == 0 {
		b.WriteString("  No container images to publish: gantry container build admin (make run builds admin and control).\n")
	}
	for _, img := range r.Images {
		fmt.Fprintf(&b, "  published %s\n", img.Ref)
	}
	switch {
	case r.Mirror == UserDataRepoOwn:
		fmt.Fprintf(&b, "  The user data has its own mirror for %s, so the node does not pull from here.\n", MirroredRegistry)
	case r.Mirror == UserDataRepoNone:
		fmt.Fprintf(&b, "  There is no user data, so the node does not know this registry (set container-registry.mirrors).\n")
	case diskReused && r.PortChanged:
		b.WriteString("  Its port changed since the node's first boot, whose settings name the old one (--fresh starts over).\n")
	default:
		fmt.Fprintf(&b, "  The node pulls %s/%s/... from here: enable the admin container with an SSH key\n"+
			"  (docs/host-containers.md#the-admin-container) and run with --forward 2222:22 to ssh in.\n", MirroredRegistry, PublishPrefix)
	}
	return b.String()
}

// rel shortens path to be relative to the working directory when it is
// below it.
func rel(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	r, err := filepath.Rel(wd, path)
	if err != nil || r == ".." || len(r) > 2 && r[:3] == "../" {
		return path
	}
	return r
}
