package admin

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBz7m3dYqEhXr6Wm5bC7n0rW0f9ZqZbq0v3Xq1Q7kq3v me@laptop"

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"no way in", `{}`, "give authorized-keys, trusted-user-ca-keys or authorized-keys-command"},
		{"bad user", `{"user":"Root!","ssh":{"authorized-keys":["` + key + `"]}}`, `user "Root!"`},
		{"root", `{"user":"root","ssh":{"authorized-keys":["` + key + `"]}}`, "not be root"},
		{"unknown key", `{"ssh":{"authorized-keys":["` + key + `"],"port":22}}`, `unknown field "port"`},
		{"two keys in one", `{"ssh":{"authorized-keys":["` + key + `\n` + key + `"]}}`, "not one OpenSSH public key line"},
		{"bad cipher", `{"ssh":{"authorized-keys":["` + key + `"],"ciphers":["aes256-ctr; rm"]}}`, "ssh.ciphers"},
	} {
		if _, err := ParseConfig([]byte(tc.body)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	c, err := ParseConfig([]byte(`{"ssh":{"authorized-keys":["` + key + `"],"ciphers":["aes256-gcm@openssh.com"],"macs":["hmac-sha2-512"]},"password-hash":"$6$x"}`))
	if err != nil || c.User != DefaultUser {
		t.Fatalf("%+v %v", c, err)
	}
	cfg := c.SSHDConfig("/p/etc/ssh", "/etc/ssh/ca")
	for _, want := range []string{"HostKey /p/etc/ssh/ssh_host_ed25519_key", "PasswordAuthentication no", "PermitRootLogin no",
		"AllowUsers ec2-user", "Ciphers aes256-gcm@openssh.com", "MACs hmac-sha2-512"} {
		if !strings.Contains(cfg, want+"\n") {
			t.Errorf("sshd_config lacks %q:\n%s", want, cfg)
		}
	}
	if strings.Contains(cfg, "TrustedUserCAKeys") || strings.Contains(cfg, "KexAlgorithms") {
		t.Errorf("sshd_config has what the user data did not ask for:\n%s", cfg)
	}
}

func TestSetup(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin"), 0o644)
	var chowned []string
	p := Paths{Root: root, Persistent: filepath.Join(root, "persist"), Chown: func(path string, uid, gid int) error {
		chowned = append(chowned, path)
		return nil
	}}
	c := &Config{User: "ops", SSH: SSHConfig{AuthorizedKeys: []string{key}, TrustedUserCAKeys: []string{key}}}
	for range 2 { // a restart writes the same files again
		if err := Setup(p, c); err != nil {
			t.Fatal(err)
		}
	}
	read := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read("etc/passwd"); strings.Count(got, "\nsshd:x:") != 1 || strings.Count(got, "ops:x:1000:1000::/home/ops:/bin/bash") != 1 {
		t.Errorf("passwd:\n%s", got)
	}
	if got := read("etc/group"); !strings.Contains(got, "api:x:274:ops\n") {
		t.Errorf("group:\n%s", got)
	}
	if got := read("etc/shadow"); !strings.Contains(got, "ops:*:") {
		t.Errorf("shadow:\n%s", got)
	}
	if got := read("home/ops/.ssh/authorized_keys"); got != key+"\n" {
		t.Errorf("authorized_keys: %q", got)
	}
	if got := read("etc/ssh/sshd_config"); !strings.Contains(got, "TrustedUserCAKeys /etc/ssh/trusted_user_ca_keys\n") ||
		!strings.Contains(got, "HostKey "+filepath.Join(root, "persist/etc/ssh")) {
		t.Errorf("sshd_config:\n%s", got)
	}
	if got := read("etc/sudoers.d/gantry-admin"); got != "ops ALL=(ALL:ALL) NOPASSWD: ALL\n" {
		t.Errorf("sudoers: %q", got)
	}
	if !slices.Contains(chowned, filepath.Join(root, "home/ops/.ssh/authorized_keys")) {
		t.Errorf("authorized_keys not given to the user: %v", chowned)
	}
}

func TestSheltieArgs(t *testing.T) {
	if got := SheltieArgs(42, nil); !slices.Equal(got, []string{"nsenter", "-t", "1", "-a", "--", "/proc/42/root/usr/bin/bash-static", "-l"}) {
		t.Errorf("shell: %q", got)
	}
	if got := SheltieArgs(42, []string{"systemctl", "status"}); !slices.Equal(got, []string{"nsenter", "-t", "1", "-a", "--", "systemctl", "status"}) {
		t.Errorf("command: %q", got)
	}
}
