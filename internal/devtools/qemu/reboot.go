package qemu

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"
)

// QEMU's SHUTDOWN event reason for a guest that asked for a reset; with
// -no-reboot QEMU then exits instead of resetting the VM.
const shutdownGuestReset = "guest-reset"

// Bounds of a reboot: choosing the set and starting QEMU again, and waiting
// for the SHUTDOWN event of the QEMU that just exited.
const (
	relaunchTimeout    = 2 * time.Minute
	shutdownEventWait  = 5 * time.Second
	relaunchPortTries  = 3
	relaunchPortPause  = time.Second
	eventsDialDeadline = 10 * time.Second
)

// process is one run of QEMU, which is one boot of the node.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once QEMU has exited and err is set
	err  error
	// reason receives the reason of QEMU's SHUTDOWN event, if one comes,
	// and is then closed; nil when nothing watches the events.
	reason chan string
}

// Boot returns the node's current boot: its number and what the boot
// loader chose.
func (n *Node) Boot() Boot {
	n.procMu.Lock()
	defer n.procMu.Unlock()
	return n.boot
}

// Image is the disk image the node's disk was made from.
func (n *Node) Image() string { return n.opts.Image }

// loadBoot prepares boot number num: with Options.Boot "disk", the boot
// loader picks the set and loads its files; else the files are booted.
func (n *Node) loadBoot(ctx context.Context, num int) error {
	o := n.opts
	b := Boot{Kernel: o.Kernel, Initrd: o.Initrd, Cmdline: KernelCmdline(o.Cmdline, o.NoAPIBridge, o.Append)}
	if o.Boot == BootFirmware {
		b = Boot{Firmware: o.OVMF, Cmdline: FirmwareCmdline(o.NoAPIBridge, o.Append)}
	}
	if o.Boot == BootDisk {
		var failed []error
		var err error
		b, failed, err = bootFromDisk(ctx, o.Debugfs, n.disk.path, filepath.Join(o.RunDir, RunBootDir), o.NoAPIBridge, o.Append)
		for _, f := range failed {
			o.Logger.Warn("boot loader: a set could not be loaded; choosing again", "error", f)
		}
		if err != nil {
			return err
		}
	}
	b.N = num
	n.procMu.Lock()
	n.boot = b
	n.procMu.Unlock()
	return nil
}

// watchShutdown reads QEMU's events from the second QMP monitor and hands
// the SHUTDOWN event's reason to p.reason.
func (n *Node) watchShutdown(p *process) {
	reason := make(chan string, 1)
	p.reason = reason
	go func() {
		defer close(reason)
		ctx, cancel := context.WithTimeout(context.Background(), eventsDialDeadline)
		q, err := dialQMP(ctx, n.eventsPath)
		cancel()
		if err != nil {
			n.opts.Logger.Warn("cannot watch QEMU's events; a guest reboot will end the node", "error", err)
			return
		}
		defer q.close()
		for {
			var m struct {
				Event string `json:"event"`
				Data  struct {
					Guest  bool   `json:"guest"`
					Reason string `json:"reason"`
				} `json:"data"`
			}
			if err := q.dec.Decode(&m); err != nil {
				return
			}
			if m.Event == "SHUTDOWN" {
				reason <- m.Data.Reason
				return
			}
		}
	}()
}

// shutdownReason is why p's QEMU ended, from its SHUTDOWN event, or "" when
// none came (QEMU was killed, or nothing watched).
func (p *process) shutdownReason() string {
	if p.reason == nil {
		return ""
	}
	select {
	case r := <-p.reason:
		return r
	case <-time.After(shutdownEventWait):
		return ""
	}
}

// supervise waits for QEMU to exit. When the guest rebooted and the node
// boots from disk, it goes through the boot loader again and starts QEMU
// anew on the same disk, run directory, host socket and port; otherwise
// (power-off, Stop, NoReboot, boot files) the node ends.
func (n *Node) supervise() {
	log := n.opts.Logger
	for {
		n.procMu.Lock()
		p := n.proc
		n.procMu.Unlock()
		<-p.done
		reason := p.shutdownReason()
		if n.opts.Boot != BootDisk || n.opts.NoReboot || n.stopping.Load() || reason != shutdownGuestReset {
			n.finish(p.err)
			return
		}
		log.Info("the guest rebooted; through the boot loader again", "boot", n.Boot().N+1)
		if err := n.relaunch(); err != nil {
			if n.stopping.Load() {
				// Stop ended the new QEMU while it was starting.
				n.finish(nil)
				return
			}
			log.Error("the node could not boot again", "error", err)
			n.finish(err)
			return
		}
	}
}

// relaunch is a reboot: the boot loader chooses and loads a set, and QEMU
// starts again with the same host port (retried briefly if the port is
// busy, since the forwarder on the host socket dials that port).
func (n *Node) relaunch() error {
	ctx, cancel := context.WithTimeout(context.Background(), relaunchTimeout)
	defer cancel()
	if err := n.loadBoot(ctx, n.Boot().N+1); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	var err error
	for try := 1; try <= relaunchPortTries; try++ {
		if err = n.launch(ctx); err == nil {
			break
		}
		var pe portError
		if !errors.As(err, &pe) {
			break
		}
		time.Sleep(relaunchPortPause)
	}
	if err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	n.opts.Logger.Info("node rebooted", "boot", n.Boot().String())
	if n.stopping.Load() {
		// Stop came while QEMU was starting: end this boot too.
		n.kill()
	}
	return nil
}

// finish ends the node with QEMU's last exit status.
func (n *Node) finish(err error) {
	n.waitErr = err
	close(n.exited)
}
