// Command rootinit is the /sbin/init of the integration test's root
// filesystem: it reports what the initramfs set up, prints GANTRY-ROOT-OK
// and powers the machine off.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/gantry-os/gantry/internal/boot/dm"
)

func main() {
	hostname, err := os.ReadFile("/etc/hostname")
	skel := strings.TrimSpace(string(hostname))
	if err != nil {
		skel = "error:" + err.Error()
	}
	etcWritable := os.WriteFile("/etc/probe", []byte("x"), 0o644) == nil
	rootRO := errors.Is(os.Mkdir("/probe", 0o755), syscall.EROFS)
	fs := mounts()
	fmt.Printf("rootinit: pid=%d args=%q etc-skel=%s etc-writable=%v root-ro=%v root-fs=%s etc-fs=%s run-fs=%s tmp-fs=%s proc=%v\n",
		os.Getpid(), os.Args, skel, etcWritable, rootRO, fs["/"], fs["/etc"], fs["/run"], fs["/tmp"], fs["/proc"] == "proc")
	reportDM()
	fmt.Println("GANTRY-ROOT-OK")
	// Drain the serial port, then power off.
	syscall.Syscall(syscall.SYS_IOCTL, 1, 0x5409 /* TCSBRK */, 1)
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}

func mounts() map[string]string {
	out := map[string]string{}
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) >= 3 {
			out[fields[1]] = fields[2]
		}
	}
	return out
}

// reportDM exercises package dm on the live root device: its status, its
// table, and a removal that must fail because the root is mounted.
func reportDM() {
	ctx := context.Background()
	c, err := dm.Open()
	if err != nil {
		fmt.Printf("rootinit: dm: %v\n", err)
		return
	}
	defer c.Close()
	v, err := c.Version(ctx)
	fmt.Printf("rootinit: dm-version=%d.%d.%d err=%v\n", v[0], v[1], v[2], err)
	st, err := c.Status(ctx, "root")
	if err == nil && len(st) == 1 {
		fmt.Printf("rootinit: dm-status=%s:%s corrupted=%v\n", st[0].Type, st[0].Params, st[0].Corrupted())
	} else {
		fmt.Printf("rootinit: dm-status error %v %v\n", st, err)
	}
	tbl, err := c.Table(ctx, "root")
	if err == nil && len(tbl) == 1 {
		fmt.Printf("rootinit: dm-table=%s\n", tbl[0])
	} else {
		fmt.Printf("rootinit: dm-table error %v %v\n", tbl, err)
	}
	fmt.Printf("rootinit: dm-remove-mounted=%v\n", c.Remove(ctx, "root"))
}
