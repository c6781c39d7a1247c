// Package admin is the admin container's start-up (gantry-admin) and
// sheltie. gantry-admin reads the container's user data (Bottlerocket's
// admin keys: user, ssh.authorized-keys, ssh.trusted-user-ca-keys, the
// algorithm lists, the authorized-keys command), makes the user (in group
// api, so apiclient works, with sudo), keeps the SSH host keys in the
// persistent directory, writes sshd's configuration and runs sshd. sheltie
// is a root shell, or a command, in the namespaces of the host's PID 1.
package admin

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// DefaultUser is Bottlerocket's admin user.
const DefaultUser = "ec2-user"

// APIGroup is the group that owns the API socket (gid 274, as
// Bottlerocket's).
const APIGroup, APIGID = "api", 274

// Config is the admin container's user data.
type Config struct {
	User string `json:"user"`
	// PasswordHash is for Bottlerocket's serial-console login; Gantry's
	// admin container has none, so it is accepted and not used.
	PasswordHash string    `json:"password-hash"`
	SSH          SSHConfig `json:"ssh"`
}

// SSHConfig is the user data's ssh table.
type SSHConfig struct {
	AuthorizedKeys            []string `json:"authorized-keys"`
	TrustedUserCAKeys         []string `json:"trusted-user-ca-keys"`
	AuthorizedKeysCommand     string   `json:"authorized-keys-command"`
	AuthorizedKeysCommandUser string   `json:"authorized-keys-command-user"`
	Ciphers                   []string `json:"ciphers"`
	KeyExchangeAlgorithms     []string `json:"key-exchange-algorithms"`
	MACs                      []string `json:"macs"`
}

var userRe = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// algoRe is one OpenSSH algorithm name.
var algoRe = regexp.MustCompile(`^[A-Za-z0-9@._+-]+$`)

// ParseConfig reads the user data; every error names its key.
func ParseConfig(b []byte) (*Config, error) {
	var c Config
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("admin user data: %w", err)
	}
	if c.User == "" {
		c.User = DefaultUser
	}
	if !userRe.MatchString(c.User) || c.User == "root" || c.User == "sshd" {
		return nil, fmt.Errorf("admin user data: user %q: must match %s and not be root or sshd", c.User, userRe)
	}
	if len(c.SSH.AuthorizedKeys) == 0 && len(c.SSH.TrustedUserCAKeys) == 0 && c.SSH.AuthorizedKeysCommand == "" {
		return nil, fmt.Errorf("admin user data: ssh: give authorized-keys, trusted-user-ca-keys or authorized-keys-command, or nobody can log in")
	}
	for i, k := range append(append([]string(nil), c.SSH.AuthorizedKeys...), c.SSH.TrustedUserCAKeys...) {
		if strings.ContainsAny(k, "\n\r") || len(strings.Fields(k)) < 2 {
			return nil, fmt.Errorf("admin user data: ssh key %d: %q is not one OpenSSH public key line", i+1, k)
		}
	}
	for name, list := range map[string][]string{"ciphers": c.SSH.Ciphers, "key-exchange-algorithms": c.SSH.KeyExchangeAlgorithms, "macs": c.SSH.MACs} {
		for _, a := range list {
			if !algoRe.MatchString(a) {
				return nil, fmt.Errorf("admin user data: ssh.%s: %q is not an algorithm name", name, a)
			}
		}
	}
	if strings.ContainsAny(c.SSH.AuthorizedKeysCommand+c.SSH.AuthorizedKeysCommandUser, "\n\r") {
		return nil, fmt.Errorf("admin user data: ssh.authorized-keys-command: one line")
	}
	return &c, nil
}

// SSHDConfig is sshd_config for c: keys only (no passwords), no root
// login, host keys in hostKeyDir, the algorithm lists when given.
func (c *Config) SSHDConfig(hostKeyDir, caKeysFile string) string {
	var b strings.Builder
	b.WriteString("# Written by gantry-admin from the admin container's user data.\n")
	for _, t := range []string{"ed25519", "ecdsa", "rsa"} {
		fmt.Fprintf(&b, "HostKey %s/ssh_host_%s_key\n", hostKeyDir, t)
	}
	b.WriteString("PermitRootLogin no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n" +
		"PubkeyAuthentication yes\nUsePAM no\nPrintMotd no\nX11Forwarding no\nAllowAgentForwarding yes\n" +
		"ClientAliveInterval 60\nSubsystem sftp internal-sftp\n")
	fmt.Fprintf(&b, "AllowUsers %s\n", c.User)
	if len(c.SSH.TrustedUserCAKeys) > 0 {
		fmt.Fprintf(&b, "TrustedUserCAKeys %s\n", caKeysFile)
	}
	if c.SSH.AuthorizedKeysCommand != "" {
		fmt.Fprintf(&b, "AuthorizedKeysCommand %s\n", c.SSH.AuthorizedKeysCommand)
		user := c.SSH.AuthorizedKeysCommandUser
		if user == "" {
			user = "nobody"
		}
		fmt.Fprintf(&b, "AuthorizedKeysCommandUser %s\n", user)
	}
	for _, o := range []struct {
		name string
		list []string
	}{{"Ciphers", c.SSH.Ciphers}, {"KexAlgorithms", c.SSH.KeyExchangeAlgorithms}, {"MACs", c.SSH.MACs}} {
		if len(o.list) > 0 {
			fmt.Fprintf(&b, "%s %s\n", o.name, strings.Join(o.list, ","))
		}
	}
	return b.String()
}
