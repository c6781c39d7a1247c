package disks

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// System is what Prepare acts on: the kernel's view of block devices, the
// host's root and mounts, and the tools it runs. Tests point it at a
// temporary tree and a loop device.
type System struct {
	// Sys is sysfs's root (/sys): disks are found in class/block.
	Sys string
	// Dev holds the device nodes Prepare opens (/dev); a missing node is
	// made from sysfs's major:minor.
	Dev string
	// MountDir is the host's /mnt as this process sees it
	// (/.bottlerocket/rootfs/mnt in a bootstrap container): the host's
	// /local/mnt, shared back to the host.
	MountDir string
	// HostMountDirs are MountDir's paths on the host, as the host's mount
	// table names them: /mnt and the /local/mnt it binds. The first is the
	// one Results name.
	HostMountDirs []string
	// MountInfo lists the host's mounts (/proc/1/mountinfo: bootstrap
	// containers are in the host's PID namespace).
	MountInfo string
	// Run runs a tool (blkid, wipefs, mkfs.*) and returns its standard
	// output; a non-zero exit is an *exec.ExitError.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
	// Mount is mount(2); Mknod is mknod(2).
	Mount func(source, target, fstype string, flags uintptr, data string) error
	Mknod func(path string, mode uint32, dev int) error
	// Log gets a line for every disk.
	Log io.Writer
}

// HostSystem is the system a bootstrap container sees.
func HostSystem(log io.Writer) System {
	return System{Sys: "/sys", Dev: "/dev", MountDir: "/.bottlerocket/rootfs/mnt",
		HostMountDirs: []string{"/mnt", "/local/mnt"}, MountInfo: "/proc/1/mountinfo",
		Run: runTool, Mount: unix.Mount, Mknod: unix.Mknod, Log: log}
}

func runTool(ctx context.Context, name string, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			ee.Stderr = stderr.Bytes()
		}
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Result is what Prepare did with one disk.
type Result struct {
	Disk Disk
	// Device is the disk's node ("" when an optional disk is missing).
	Device string
	// Formatted is true when Prepare made the filesystem now; Wiped when
	// it erased something else first.
	Formatted, Wiped bool
	// AlreadyMounted is true when the disk was mounted there already.
	AlreadyMounted bool
	// Mountpoint is the host's path (/mnt/<mount>).
	Mountpoint string
}

// Prepare prepares every disk of c in order and returns what it did. A disk
// that fails does not stop the others; the error joins every failure, each
// naming its entry.
func (s System) Prepare(ctx context.Context, c *Config) ([]Result, error) {
	mounts, err := readMountInfo(s.MountInfo)
	if err != nil {
		return nil, err
	}
	var results []Result
	var errs []error
	for i, d := range c.Disks {
		r, err := s.prepare(ctx, d, mounts)
		if err != nil {
			errs = append(errs, fmt.Errorf("disks[%d] (%s): %w", i, d.Name(), err))
			continue
		}
		results = append(results, r)
		if s.Log != nil {
			fmt.Fprintln(s.Log, r.String())
		}
	}
	return results, errors.Join(errs...)
}

// String is the result's log line.
func (r Result) String() string {
	switch {
	case r.Device == "":
		return fmt.Sprintf("gantry-disks: %s: not present, optional: skipped", r.Disk.Name())
	case r.AlreadyMounted:
		return fmt.Sprintf("gantry-disks: %s: already mounted on %s", r.Device, r.Mountpoint)
	}
	what := "kept its " + r.Disk.Filesystem + " filesystem"
	if r.Formatted {
		what = "formatted " + r.Disk.Filesystem
		if r.Wiped {
			what = "wiped, " + what
		}
	}
	return fmt.Sprintf("gantry-disks: %s: %s, mounted on %s", r.Device, what, r.Mountpoint)
}

func (s System) prepare(ctx context.Context, d Disk, mounts []mountEntry) (Result, error) {
	r := Result{Disk: d, Mountpoint: filepath.Join(s.HostMountDirs[0], d.Mount)}
	name, err := s.find(d)
	if err != nil {
		return r, err
	}
	if name == "" {
		return r, nil
	}
	block := filepath.Join(s.Sys, "class/block", name)
	numbers, err := diskNumbers(block, name)
	if err != nil {
		return r, err
	}
	if r.Device, err = s.node(name, numbers[0]); err != nil {
		return r, err
	}
	target := filepath.Join(s.MountDir, d.Mount)
	var elsewhere *mountEntry
	for _, m := range mounts {
		if !slices.Contains(numbers, m.dev) {
			continue
		}
		ours := m.dev == numbers[0] && slices.ContainsFunc(s.HostMountDirs, func(dir string) bool {
			return m.point == filepath.Join(dir, d.Mount)
		})
		if ours {
			r.AlreadyMounted = true
		} else if elsewhere == nil {
			elsewhere = &m
		}
	}
	if elsewhere != nil {
		return r, fmt.Errorf("%s is mounted on %s: it is in use, not an ephemeral disk", elsewhere.source, elsewhere.point)
	}
	if r.AlreadyMounted {
		return r, nil
	}
	if holders, _ := os.ReadDir(filepath.Join(block, "holders")); len(holders) > 0 {
		return r, fmt.Errorf("held by %s (a device-mapper or RAID device): in use", holders[0].Name())
	}
	found, err := s.probe(ctx, r.Device)
	if err != nil {
		return r, err
	}
	if len(numbers) > 1 && found["PTTYPE"] == "" {
		found["PTTYPE"] = "unknown"
	}
	switch {
	case found["TYPE"] == d.Filesystem:
	case found["TYPE"] != "" || found["PTTYPE"] != "":
		if !d.Wipe {
			return r, fmt.Errorf("it holds %s; not formatted, so no data is lost: set \"wipe\": true in its entry to format it", describe(found))
		}
		if _, err := s.Run(ctx, "wipefs", "--all", "--force", r.Device); err != nil {
			return r, err
		}
		r.Wiped = true
		fallthrough
	default:
		if err := s.format(ctx, d, r.Device); err != nil {
			return r, err
		}
		r.Formatted = true
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return r, fmt.Errorf("mount point: %w", err)
	}
	flags, data := mountOptions(d.MountOptions)
	if err := s.Mount(r.Device, target, d.Filesystem, flags, data); err != nil {
		return r, fmt.Errorf("mount %s on %s (%s, %q): %w", r.Device, r.Mountpoint, d.Filesystem, data, err)
	}
	return r, nil
}

// find returns the disk's kernel name, "" for a missing optional disk.
func (s System) find(d Disk) (string, error) {
	classBlock := filepath.Join(s.Sys, "class/block")
	if d.Device != "" {
		name := filepath.Base(d.Device)
		if real, err := filepath.EvalSymlinks(filepath.Join(s.Dev, strings.TrimPrefix(d.Device, "/dev/"))); err == nil {
			name = filepath.Base(real)
		}
		if _, err := os.Stat(filepath.Join(classBlock, name)); err != nil {
			if d.Optional {
				return "", nil
			}
			return "", fmt.Errorf("no such disk (the kernel has %s)", s.diskList())
		}
		if _, err := os.Stat(filepath.Join(classBlock, name, "partition")); err == nil {
			return "", fmt.Errorf("%s is a partition: give the whole disk", name)
		}
		return name, nil
	}
	ents, err := os.ReadDir(classBlock)
	if err != nil {
		return "", fmt.Errorf("list disks: %w", err)
	}
	var match []string
	for _, e := range ents {
		if serial(filepath.Join(classBlock, e.Name())) == d.Serial {
			match = append(match, e.Name())
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		if d.Optional {
			return "", nil
		}
		return "", fmt.Errorf("no disk has this serial (the kernel has %s)", s.diskList())
	default:
		return "", fmt.Errorf("%d disks have this serial: %s", len(match), strings.Join(match, ", "))
	}
}

// diskList names the whole disks with their serials, for errors.
func (s System) diskList() string {
	classBlock := filepath.Join(s.Sys, "class/block")
	ents, _ := os.ReadDir(classBlock)
	var names []string
	for _, e := range ents {
		dir := filepath.Join(classBlock, e.Name())
		if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
			continue
		}
		n := e.Name()
		if sn := serial(dir); sn != "" {
			n += " (serial " + sn + ")"
		}
		names = append(names, n)
	}
	if len(names) == 0 {
		return "no disks"
	}
	return strings.Join(names, ", ")
}

// serial is a block device's serial number as the kernel reports it:
// class/block/<name>/serial (virtio-blk) or .../device/serial (NVMe, SCSI);
// "" for none.
func serial(dir string) string {
	for _, f := range []string{"serial", "device/serial"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
			if sn := strings.TrimSpace(string(b)); sn != "" {
				return sn
			}
		}
	}
	return ""
}

// diskNumbers returns the disk's major:minor, then its partitions'.
func diskNumbers(block, name string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(block, "dev"))
	if err != nil {
		return nil, fmt.Errorf("device number: %w", err)
	}
	nums := []string{strings.TrimSpace(string(b))}
	ents, _ := os.ReadDir(block)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), name) {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(block, e.Name(), "dev")); err == nil {
			nums = append(nums, strings.TrimSpace(string(b)))
		}
	}
	return nums, nil
}

// node returns the disk's device node in s.Dev, made if missing: a
// container's /dev has only the basic nodes.
func (s System) node(name, number string) (string, error) {
	p := filepath.Join(s.Dev, name)
	var major, minor uint32
	if _, err := fmt.Sscanf(number, "%d:%d", &major, &minor); err != nil {
		return "", fmt.Errorf("device number %q: %w", number, err)
	}
	want := unix.Mkdev(major, minor)
	var st unix.Stat_t
	switch err := unix.Stat(p, &st); {
	case err == nil:
		if st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != want {
			return "", fmt.Errorf("%s is not block device %s", p, number)
		}
		return p, nil
	case errors.Is(err, unix.ENOENT):
		if err := s.Mknod(p, unix.S_IFBLK|0o600, int(want)); err != nil {
			return "", fmt.Errorf("make device node %s (%s): %w", p, number, err)
		}
		return p, nil
	default:
		return "", fmt.Errorf("device node: %w", err)
	}
}

// probe returns what blkid finds on the device (TYPE, PTTYPE, LABEL, ...),
// nothing for a blank one.
func (s System) probe(ctx context.Context, dev string) (map[string]string, error) {
	out, err := s.Run(ctx, "blkid", "--probe", "--output", "export", dev)
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 2 {
		return map[string]string{}, nil // nothing recognised
	}
	if err != nil {
		return nil, err
	}
	found := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			found[k] = v
		}
	}
	return found, nil
}

func describe(found map[string]string) string {
	switch {
	case found["TYPE"] != "" && found["LABEL"] != "":
		return fmt.Sprintf("a filesystem (%s, labelled %q)", found["TYPE"], found["LABEL"])
	case found["TYPE"] != "":
		return fmt.Sprintf("a filesystem (%s)", found["TYPE"])
	default:
		return fmt.Sprintf("a partition table (%s)", found["PTTYPE"])
	}
}

func (s System) format(ctx context.Context, d Disk, dev string) error {
	var args []string
	switch d.Filesystem {
	case "ext4":
		// Lazy init: the inode tables and journal are zeroed in the
		// background after mounting, so a large disk is ready at once.
		args = []string{"mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1"}
	case "xfs":
		args = []string{"mkfs.xfs", "-q", "-f"}
	default:
		return fmt.Errorf("filesystem %q is not supported", d.Filesystem)
	}
	if d.Label != "" {
		args = append(args, "-L", d.Label)
	}
	_, err := s.Run(ctx, args[0], append(args[1:], dev)...)
	return err
}

// flagOptions are the options mount(8) turns into mount(2) flags; the rest
// go to the filesystem as data.
var flagOptions = map[string]uintptr{
	"ro": unix.MS_RDONLY, "nosuid": unix.MS_NOSUID, "nodev": unix.MS_NODEV, "noexec": unix.MS_NOEXEC,
	"sync": unix.MS_SYNCHRONOUS, "dirsync": unix.MS_DIRSYNC, "noatime": unix.MS_NOATIME,
	"nodiratime": unix.MS_NODIRATIME, "relatime": unix.MS_RELATIME, "strictatime": unix.MS_STRICTATIME,
	"lazytime": unix.MS_LAZYTIME,
}

func mountOptions(opts []string) (uintptr, string) {
	var flags uintptr
	var data []string
	for _, o := range opts {
		if f, ok := flagOptions[o]; ok {
			flags |= f
		} else if o != "rw" && o != "defaults" {
			data = append(data, o)
		}
	}
	return flags, strings.Join(data, ",")
}

type mountEntry struct{ dev, point, source string }

// readMountInfo reads a mountinfo file: each mount's major:minor, mount
// point and source.
func readMountInfo(path string) ([]mountEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("the host's mounts: %w", err)
	}
	defer f.Close()
	var ms []mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if len(fields) < 5 || sep < 0 || sep+2 >= len(fields) {
			continue
		}
		ms = append(ms, mountEntry{dev: fields[2], point: unescape(fields[4]), source: unescape(fields[sep+2])})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("the host's mounts: %w", err)
	}
	return ms, nil
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			var c int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(byte(c))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
