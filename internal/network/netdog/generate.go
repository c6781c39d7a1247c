// Package netdog owns the node's network at run time, on top of
// systemd-networkd: choosing the configuration (net.toml, the kernel
// command line, else DHCP on the first interface) and writing networkd's
// files before it starts; reading what networkd learnt (addresses, routes,
// DHCP's name servers, domains and host name); /etc/resolv.conf from
// settings.dns merged with DHCP; the kernel's host name; the node's IP
// address and host name generators. The netdog command line is in
// internal/node/netdog.
package netdog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/gantry-os/gantry/internal/network/netconfig"
	"github.com/gantry-os/gantry/internal/network/networkd"
	"github.com/gantry-os/gantry/pkg/durable"
)

// Paths are the files netdog reads and writes; System gives the node's.
type Paths struct {
	// NetTOML are the places a user's net.toml may be, first found wins:
	// the PRIVATE partition, then QEMU's fw_cfg entry.
	NetTOML []string
	// Cmdline is the kernel command line (/proc/cmdline).
	Cmdline string
	// SysClassNet lists the interfaces (/sys/class/net).
	SysClassNet string
	// NetworkDir is where networkd's generated files go
	// (/run/systemd/network).
	NetworkDir string
	// StateDir keeps what netdog decided (/run/netdog): the primary
	// interface and wait-online's arguments.
	StateDir string
	// NetifDir is networkd's state (/run/systemd/netif).
	NetifDir string
	// ResolvConf is /etc/resolv.conf.
	ResolvConf string
	// ProcNet is /proc/net, for the routing tables.
	ProcNet string
	// Hostname is /etc/hostname, which settings-applier renders.
	HostnameFile string
}

// The places of the node's files.
const (
	// PrivateNetTOML is net.toml on the PRIVATE partition, beside
	// user-data.toml: where Bottlerocket's metal provisioning puts it.
	PrivateNetTOML = "/var/lib/gantry/net.toml"
	// FwCfgNetTOML is QEMU's fw_cfg entry opt/gantry/net.toml
	// (`gantry run --net-toml`).
	FwCfgNetTOML = "/sys/firmware/qemu_fw_cfg/by_name/opt/gantry/net.toml/raw"
)

// System returns the node's paths.
func System() Paths {
	return Paths{
		NetTOML:      []string{PrivateNetTOML, FwCfgNetTOML},
		Cmdline:      "/proc/cmdline",
		SysClassNet:  "/sys/class/net",
		NetworkDir:   "/run/systemd/network",
		StateDir:     "/run/netdog",
		NetifDir:     "/run/systemd/netif",
		ResolvConf:   "/etc/resolv.conf",
		ProcNet:      "/proc/net",
		HostnameFile: "/etc/hostname",
	}
}

// Under returns the paths below root (a test's or a chroot's tree).
func (p Paths) Under(root string) Paths {
	if root == "" || root == "/" {
		return p
	}
	j := func(s string) string { return filepath.Join(root, s) }
	q := p
	q.NetTOML = nil
	for _, n := range p.NetTOML {
		q.NetTOML = append(q.NetTOML, j(n))
	}
	q.Cmdline, q.SysClassNet, q.NetworkDir, q.StateDir = j(p.Cmdline), j(p.SysClassNet), j(p.NetworkDir), j(p.StateDir)
	q.NetifDir, q.ResolvConf, q.ProcNet, q.HostnameFile = j(p.NetifDir), j(p.ResolvConf), j(p.ProcNet), j(p.HostnameFile)
	return q
}

// Generated is what Generate chose and wrote.
type Generated struct {
	Config *netconfig.Config
	// PrimaryName is the primary device's interface name ("" when a MAC
	// address matches no interface yet).
	PrimaryName string
	Files       []networkd.File
	// UserError is why the user's configuration was not used (a bad
	// net.toml or kernel parameter); the node then runs the default.
	UserError error
}

// Generate chooses the network configuration and writes networkd's files
// and netdog's state. A bad user configuration does not stop it: it writes
// the default (DHCP on the first interface), and reports the user's error
// in Generated.UserError for the console.
func Generate(p Paths) (*Generated, error) {
	g := &Generated{}
	cfg, err := p.netTOML()
	if err != nil {
		g.UserError = err
	}
	if cfg == nil {
		// No net.toml, or a bad one: the kernel command line's default
		// interface, else the first interface.
		cfg, err = p.cmdlineConfig()
		if err != nil {
			g.UserError = errors.Join(g.UserError, err)
		}
	}
	if cfg == nil {
		first, ferr := p.firstInterface()
		if ferr != nil {
			return nil, ferr
		}
		cfg = netconfig.Default(first)
	}
	g.Config = cfg
	g.PrimaryName = p.interfaceName(*cfg.Primary())
	g.Files = networkd.Files(cfg)
	if err := p.write(g); err != nil {
		return nil, err
	}
	return g, nil
}

// netTOML is the user's net.toml, nil when there is none.
func (p Paths) netTOML() (*netconfig.Config, error) {
	for _, path := range p.NetTOML {
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		c, err := netconfig.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		c.Source = path
		return c, nil
	}
	return nil, nil
}

// cmdlineConfig is netdog.default-interface= of the kernel command line,
// nil when it has none.
func (p Paths) cmdlineConfig() (*netconfig.Config, error) {
	cmdline, err := os.ReadFile(p.Cmdline)
	if err != nil {
		return nil, fmt.Errorf("read kernel command line: %w", err)
	}
	return netconfig.FromCmdline(string(cmdline))
}

// firstInterface is the physical interface with the lowest index: the
// default's primary. eth0 when none is there yet (its driver not loaded).
func (p Paths) firstInterface() (string, error) {
	entries, err := os.ReadDir(p.SysClassNet)
	if err != nil {
		return "", fmt.Errorf("list interfaces: %w", err)
	}
	best, bestIdx := "", -1
	for _, e := range entries {
		dir := filepath.Join(p.SysClassNet, e.Name())
		if _, err := os.Stat(filepath.Join(dir, "device")); err != nil {
			continue // virtual: loopback, bridges, bonds, tunnels
		}
		idx, err := readInt(filepath.Join(dir, "ifindex"))
		if err != nil {
			continue
		}
		if bestIdx < 0 || idx < bestIdx {
			best, bestIdx = e.Name(), idx
		}
	}
	if best == "" {
		return "eth0", nil
	}
	return best, nil
}

// interfaceName is a device's interface name: its name, or the interface
// whose permanent address is its MAC.
func (p Paths) interfaceName(d netconfig.Device) string {
	if d.MAC == nil {
		return d.Name
	}
	entries, _ := os.ReadDir(p.SysClassNet)
	want := d.MAC.String()
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(p.SysClassNet, e.Name(), "address"))
		if err == nil && strings.TrimSpace(string(b)) == want {
			return e.Name()
		}
	}
	return ""
}

// Generated files carry this mark; Generate replaces only marked files.
const generatedMark = "# Generated by netdog"

func (p Paths) write(g *Generated) error {
	if err := os.MkdirAll(p.NetworkDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", p.NetworkDir, err)
	}
	old, _ := os.ReadDir(p.NetworkDir)
	for _, e := range old {
		path := filepath.Join(p.NetworkDir, e.Name())
		if b, err := os.ReadFile(path); err == nil && strings.HasPrefix(string(b), generatedMark) {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("remove stale %s: %w", path, err)
			}
		}
	}
	for _, f := range g.Files {
		if err := durable.WriteFile(filepath.Join(p.NetworkDir, f.Name), []byte(f.Content), 0o644); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(p.StateDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", p.StateDir, err)
	}
	args := networkd.WaitOnlineArgs(g.Config, g.PrimaryName)
	state := map[string]string{
		"primary-interface": g.PrimaryName + "\n",
		"source":            g.Config.Source + "\n",
		// systemd-networkd-wait-online's drop-in reads this.
		"wait-online.env": "NETDOG_WAIT_ONLINE_ARGS=" + strings.Join(args, " ") + "\n",
	}
	names := make([]string, 0, len(state))
	for n := range state {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := durable.WriteFile(filepath.Join(p.StateDir, n), []byte(state[n]), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// PrimaryInterface is the primary interface Generate chose, "" before it ran.
func (p Paths) PrimaryInterface() string {
	b, err := os.ReadFile(filepath.Join(p.StateDir, "primary-interface"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
