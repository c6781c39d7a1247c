package admin

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// UID is the admin user's uid and gid.
const UID = 1000

// Paths are where Setup writes: the container's root (/ in the container,
// a folder in tests) and the persistent directory.
type Paths struct {
	Root, Persistent string
	// Chown gives the user's files to it (os.Lchown).
	Chown func(path string, uid, gid int) error
}

// DefaultPaths are the container's.
func DefaultPaths() Paths {
	return Paths{Root: "/", Persistent: "/.bottlerocket/host-containers/current", Chown: os.Lchown}
}

// HostKeyDir is where the SSH host keys are kept: the persistent
// directory's etc/ssh (Bottlerocket's place), so that they survive restarts
// and reboots.
func (p Paths) HostKeyDir() string { return filepath.Join(p.Persistent, "etc", "ssh") }

// Setup writes the accounts (the user in groups api and sudo-less
// NOPASSWD sudoers, sshd's privilege-separation user), the user's
// authorized keys, the trusted CA keys and sshd_config. The host keys are
// made by the caller (ssh-keygen -A -f Persistent) when missing.
func Setup(p Paths, c *Config) error {
	at := func(rel string) string { return filepath.Join(p.Root, rel) }
	home := "/home/" + c.User
	if err := appendLines(at("etc/passwd"), []string{
		fmt.Sprintf("%s:x:%d:%d::%s:/bin/bash", c.User, UID, UID, home),
		"sshd:x:100:65534::/run/sshd:/usr/sbin/nologin",
	}); err != nil {
		return err
	}
	if err := appendLines(at("etc/group"), []string{
		fmt.Sprintf("%s:x:%d:", c.User, UID),
		fmt.Sprintf("%s:x:%d:%s", APIGroup, APIGID, c.User),
	}); err != nil {
		return err
	}
	// "*": no password, and not locked (sshd refuses locked accounts).
	if err := appendLines(at("etc/shadow"), []string{c.User + ":*:20000:0:99999:7:::", "sshd:*:20000:0:99999:7:::"}); err != nil {
		return err
	}
	if err := os.Chmod(at("etc/shadow"), 0o640); err != nil {
		return err
	}
	ssh := at(home + "/.ssh")
	if err := os.MkdirAll(ssh, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(ssh, "authorized_keys"), []byte(lines(c.SSH.AuthorizedKeys)), 0o600); err != nil {
		return err
	}
	for _, d := range []string{at(home), ssh, filepath.Join(ssh, "authorized_keys")} {
		if err := p.Chown(d, UID, UID); err != nil {
			return err
		}
	}
	caFile := "/etc/ssh/trusted_user_ca_keys"
	if err := os.MkdirAll(at("etc/ssh"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(at(caFile), []byte(lines(c.SSH.TrustedUserCAKeys)), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(at("etc/ssh/sshd_config"), []byte(c.SSHDConfig(p.HostKeyDir(), caFile)), 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(at("etc/sudoers.d"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(at("etc/sudoers.d/gantry-admin"), []byte(c.User+" ALL=(ALL:ALL) NOPASSWD: ALL\n"), 0o440); err != nil {
		return err
	}
	if err := os.MkdirAll(p.HostKeyDir(), 0o700); err != nil {
		return err
	}
	return os.MkdirAll(at("run/sshd"), 0o755)
}

func lines(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return strings.Join(l, "\n") + "\n"
}

// appendLines adds the account lines whose names the file lacks.
func appendLines(path string, add []string) error {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if name, _, ok := strings.Cut(l, ":"); ok {
			have[name] = true
		}
	}
	out := string(b)
	if out != "" && !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	for _, l := range add {
		name, _, _ := strings.Cut(l, ":")
		if !have[name] {
			out += l + "\n"
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(out), 0o644)
}

// ShellPath is bash's static build in the admin image, run through
// /proc/<pid>/root after entering the host's mount namespace (the host has
// no shell).
const ShellPath = "/usr/bin/bash-static"

// SheltieArgs is the nsenter command line of sheltie: into every
// namespace of the host's PID 1, then the admin image's static bash (found
// through the root of pid, a process still in the container), or args.
func SheltieArgs(pid int, args []string) []string {
	base := []string{"nsenter", "-t", "1", "-a", "--"}
	if len(args) > 0 {
		return append(base, args...)
	}
	return append(base, "/proc/"+strconv.Itoa(pid)+"/root"+ShellPath, "-l")
}
