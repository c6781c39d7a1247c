//go:build linux

package bootinit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gantry-os/gantry/internal/boot/dm"
	"github.com/gantry-os/gantry/internal/boot/initrd"
	"github.com/gantry-os/gantry/internal/boot/verity"
)

// Where the new root is mounted, and its DM device's name.
const (
	SysRoot    = "/sysroot"
	RootDMName = "root"
	// DiskTimeout is how long gantry-init waits for the OS disk.
	DiskTimeout = 30 * time.Second
)

// Console prints gantry-init's messages, each prefixed with the time since
// boot, to the console.
type Console struct {
	W io.Writer
}

// Printf prints one message.
func (c Console) Printf(format string, args ...any) {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	fmt.Fprintf(c.W, "gantry-init [%4d.%03d]: %s\n", ts.Sec, ts.Nsec/1e6, fmt.Sprintf(format, args...))
}

// Boot runs the boot as PID 1: everything up to and including the exec of
// the new root's init. It returns only on failure; the caller then calls
// Fail. args and env are gantry-init's own (what the kernel passed it),
// handed on to the new init.
func Boot(ctx context.Context, con Console, args, env []string) error {
	if os.Getpid() != 1 {
		return errors.New("gantry-init must run as PID 1 in the initramfs")
	}
	con.Printf("starting")
	if err := mountAPI(); err != nil {
		return err
	}
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("read kernel command line: %w", err)
	}
	if IsSelector(string(raw)) {
		// The UEFI chain's boot loader (select_linux.go): it ends in a
		// kexec of the chosen set's kernel, not in this root.
		con.Printf("selector mode (%s)", ParamSelect)
		if err := loadModules(con); err != nil {
			return err
		}
		return runSelector(ctx, con)
	}
	cmd, err := ParseCmdline(string(raw))
	if err != nil {
		return err
	}
	for _, w := range cmd.Warnings {
		con.Printf("warning: %s", w)
	}
	if err := loadModules(con); err != nil {
		return err
	}

	wctx, cancel := context.WithTimeout(ctx, DiskTimeout)
	disk, err := FindDisk(wctx, DefaultPaths(), 20*time.Millisecond)
	cancel()
	if err != nil {
		return err
	}
	if err := LinkPartitions("/dev", disk); err != nil {
		con.Printf("warning: %v", err)
	}
	set, why, err := ChooseSet(disk.Partitions, cmd)
	if err != nil {
		return fmt.Errorf("%s: %w", disk.Path, err)
	}
	rootDev, err := disk.Partition(set.Root.Number)
	if err != nil {
		return err
	}
	hashDev, err := disk.Partition(set.Hash.Number)
	if err != nil {
		return err
	}
	con.Printf("disk %s, set %s (%s): root %s, hash %s", disk.Path, set.ID, why, rootDev.Path, hashDev.Path)

	dev, err := openVerity(ctx, con, cmd, rootDev, hashDev)
	if err != nil {
		return err
	}
	if err := mountRoot(con, dev); err != nil {
		return err
	}
	if err := mountWritable(con); err != nil {
		return err
	}
	return switchRoot(con, cmd.Init, args, env)
}

// Fail prints err as the reason the boot stopped and powers the machine
// off. It never returns.
func Fail(con Console, err error) {
	con.Printf("FATAL: %v", err)
	con.Printf("the root filesystem was not booted; powering off")
	if f, ok := con.W.(*os.File); ok {
		// Wait until the serial port has sent everything (TCSBRK with a
		// non-zero argument is tcdrain).
		_ = unix.IoctlSetInt(int(f.Fd()), unix.TCSBRK, 1)
	}
	unix.Sync()
	if os.Getpid() == 1 {
		_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
		// Power off failed. PID 1 must not exit (the kernel would panic
		// with a less helpful message): stay here.
		for {
			time.Sleep(time.Hour)
		}
	}
	os.Exit(1)
}

// mountAPI mounts /proc, /sys and /dev (devtmpfs; Debian's kernel does not
// mount it itself).
func mountAPI() error {
	for _, m := range []struct{ src, dir, fstype, data string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"devtmpfs", "/dev", "devtmpfs", "mode=0755"},
	} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return fmt.Errorf("mount %s: %w", m.dir, err)
		}
		err := unix.Mount(m.src, m.dir, m.fstype, unix.MS_NOSUID|unix.MS_NOEXEC, m.data)
		if err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.dir, err)
		}
	}
	return nil
}

// loadModules loads the modules the initramfs lists, in order. A module
// that is already loaded is fine; one that fails is reported and skipped,
// since some fail for hardware that is absent (a CPU without an
// instruction set a crypto module wants) and whatever really needed it
// fails loudly later.
func loadModules(con Console) error {
	f, err := os.Open(initrd.ModuleListPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load modules: %w", err)
	}
	list, err := initrd.ParseModuleList(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("load modules: %w", err)
	}
	var loaded []string
	for _, p := range list {
		inserted, err := initrd.InsertModule(p)
		switch {
		case err != nil:
			con.Printf("warning: %v", err)
		case inserted:
			loaded = append(loaded, initrd.ModuleName(p))
		}
	}
	con.Printf("loaded %d modules: %s", len(loaded), strings.Join(loaded, " "))
	return nil
}

// openVerity reads the verity superblock from the hash partition and
// creates the read-only dm-verity device over the root partition.
func openVerity(ctx context.Context, con Console, cmd Cmdline, rootDev, hashDev PartitionDevice) (string, error) {
	hf, err := os.Open(hashDev.Path)
	if err != nil {
		return "", fmt.Errorf("open hash partition: %w", err)
	}
	sb, err := verity.ReadSuperblock(hf)
	hf.Close()
	if err != nil {
		return "", fmt.Errorf("hash partition %s: %w", hashDev.Path, err)
	}
	if sb.Algorithm != verity.Algorithm || sb.HashType != verity.HashType {
		return "", fmt.Errorf("hash partition %s: hash %s type %d; Gantry roots use %s type %d", hashDev.Path, sb.Algorithm, sb.HashType, verity.Algorithm, verity.HashType)
	}
	if need := int64(sb.DataBlocks) * int64(sb.DataBlockSize); need > rootDev.Size {
		return "", fmt.Errorf("hash partition %s covers %d bytes but root partition %s has %d", hashDev.Path, need, rootDev.Path, rootDev.Size)
	}
	v := dm.Verity{
		DataDevice: rootDev.DevNum(), HashDevice: hashDev.DevNum(),
		DataBlockSize: sb.DataBlockSize, HashBlockSize: sb.HashBlockSize,
		DataBlocks: sb.DataBlocks, HashStartBlock: sb.HashStartBlock(),
		Algorithm: sb.Algorithm, RootHash: cmd.RootHash, Salt: sb.SaltHex(),
	}
	if o := cmd.Verity.TableOption(); o != "" {
		v.Options = []string{o}
	}
	ctl, err := dm.Open()
	if err != nil {
		return "", err
	}
	defer ctl.Close()
	d, err := ctl.CreateVerity(ctx, RootDMName, v)
	if err != nil {
		return "", err
	}
	t, _ := v.Target()
	con.Printf("dm-verity %s: %s", d.Path(), t)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return dm.WaitNode(wctx, d)
}

// mountRoot mounts the verity device read-only on /sysroot: erofs, or ext4
// for images built that way. A read failure here is a verification failure
// (in eio mode; the other modes have already stopped the machine).
func mountRoot(con Console, dev string) error {
	if err := os.MkdirAll(SysRoot, 0o755); err != nil {
		return err
	}
	var errs []error
	for _, fs := range []struct{ typ, data string }{{"erofs", ""}, {"ext4", "noload"}} {
		err := unix.Mount(dev, SysRoot, fs.typ, unix.MS_RDONLY|unix.MS_NODEV, fs.data)
		if err == nil {
			con.Printf("mounted %s on %s (%s, read-only)", dev, SysRoot, fs.typ)
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", fs.typ, err))
	}
	return fmt.Errorf("mount root %s: %w (a wrong %s or a corrupted root makes reads fail)", dev, errors.Join(errs...), ParamRootHash)
}

// mountWritable mounts tmpfs on /sysroot/etc (filled from the image's
// etc-skel), /sysroot/run and /sysroot/tmp. /etc is required; run and tmp
// are mounted when the image has the directory.
func mountWritable(con Console) error {
	etc := filepath.Join(SysRoot, "etc")
	if _, err := os.Stat(etc); err != nil {
		return fmt.Errorf("the root filesystem has no /etc to mount a tmpfs on: %w", err)
	}
	if err := unix.Mount("tmpfs", etc, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mount tmpfs on /etc: %w", err)
	}
	skel := filepath.Join(SysRoot, EtcSkel)
	if _, err := os.Stat(skel); err == nil {
		if err := CopyTree(skel, etc); err != nil {
			return fmt.Errorf("fill /etc: %w", err)
		}
		con.Printf("/etc is a tmpfs filled from /%s", EtcSkel)
	} else {
		con.Printf("/etc is an empty tmpfs (no /%s)", EtcSkel)
	}
	for _, m := range []struct{ dir, data string }{{"run", "mode=0755"}, {"tmp", "mode=1777"}} {
		dir := filepath.Join(SysRoot, m.dir)
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, m.data); err != nil {
			return fmt.Errorf("mount tmpfs on /%s: %w", m.dir, err)
		}
	}
	return nil
}

// switchRoot moves /dev, /proc and /sys into the new root, frees the
// initramfs, makes /sysroot the root and execs init there. It returns only
// on failure.
func switchRoot(con Console, init string, args, env []string) error {
	for _, d := range []string{"/dev", "/proc", "/sys"} {
		target := filepath.Join(SysRoot, d)
		if _, err := os.Stat(target); err != nil {
			_ = unix.Unmount(d, unix.MNT_DETACH)
			continue
		}
		if err := unix.Mount(d, target, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("switch root: move %s: %w", d, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(SysRoot, init)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("switch root: init %s is not an executable in the root filesystem (%v)", init, err)
	}
	freeInitramfs()
	if err := os.Chdir(SysRoot); err != nil {
		return fmt.Errorf("switch root: %w", err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("switch root: move %s to /: %w", SysRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("switch root: chroot: %w", err)
	}
	if err := os.Chdir("/"); err != nil {
		return fmt.Errorf("switch root: %w", err)
	}
	argv := append([]string{init}, args[min(1, len(args)):]...)
	con.Printf("switching root, exec %s", strings.Join(argv, " "))
	if err := unix.Exec(init, argv, env); err != nil {
		return fmt.Errorf("exec %s: %w", init, err)
	}
	return nil
}

// freeInitramfs deletes the initramfs's files (they stay in memory
// otherwise), without crossing into other filesystems such as /sysroot.
// It does nothing unless / is a ramfs or tmpfs.
func freeInitramfs() {
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil || (st.Type != unix.RAMFS_MAGIC && st.Type != unix.TMPFS_MAGIC) {
		return
	}
	var root unix.Stat_t
	if err := unix.Lstat("/", &root); err != nil {
		return
	}
	var remove func(dir string)
	remove = func(dir string) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			var s unix.Stat_t
			if unix.Lstat(p, &s) != nil || s.Dev != root.Dev {
				continue
			}
			if e.IsDir() {
				remove(p)
				_ = unix.Rmdir(p)
			} else {
				_ = unix.Unlink(p)
			}
		}
	}
	remove("/")
}
