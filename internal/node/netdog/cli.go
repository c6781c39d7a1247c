// Package netdog is the netdog command line (Bottlerocket's name) on
// package internal/network/netdog: generate-net-config before
// systemd-networkd starts, write-resolv-conf and set-hostname as settings
// restart commands, online after network-online.target, and the host name
// and node IP generators.
package netdog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/gantry-os/gantry/internal/network/netdog"
	"github.com/gantry-os/gantry/pkg/apiclient"
	"github.com/spf13/cobra"
)

// IO is where the commands write.
type IO struct {
	Out, Err io.Writer
}

// errReported is a failure already explained on stderr.
var errReported = errors.New("reported")

// NewCommand returns the netdog command line over host h.
func NewCommand(h netdog.Host, o IO) *cobra.Command {
	socket, under := apiclient.DefaultSocketPath, ""
	root := &cobra.Command{
		Use:           "netdog",
		Short:         "Configure the node's network through systemd-networkd, and report it",
		SilenceErrors: true, SilenceUsage: true,
		PersistentPreRun: func(*cobra.Command, []string) {
			h.Paths = h.Paths.Under(under)
		},
	}
	root.PersistentFlags().StringVar(&socket, "socket-path", socket, "the settings API's socket")
	root.PersistentFlags().StringVar(&under, "root", "", "read and write the node's files below this directory (tests)")
	emit := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(o.Out, "%s\n", b)
		return err
	}
	root.AddCommand(
		&cobra.Command{
			Use:   "generate-net-config",
			Short: "Write systemd-networkd's files from net.toml, netdog.default-interface= or the default (DHCP on the first interface)",
			Args:  cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				g, err := netdog.Generate(h.Paths)
				if err != nil {
					return err
				}
				if g.UserError != nil {
					fmt.Fprintf(o.Err, "netdog: ERROR: the network configuration was not used: %v\n", g.UserError)
					fmt.Fprintf(o.Err, "netdog: falling back to DHCP on %s; fix the file and reboot\n", g.PrimaryName)
				}
				fmt.Fprintf(o.Out, "netdog: network configuration from %s: %d devices, primary %s; wrote %d files to %s\n",
					g.Config.Source, len(g.Config.Devices), g.Config.Primary().ID(), len(g.Files), h.NetworkDir)
				if g.UserError != nil {
					return errReported
				}
				return nil
			},
		},
		&cobra.Command{
			Use:   "write-resolv-conf",
			Short: "Write /etc/resolv.conf from settings.dns, and DHCP's name servers and domains where settings.dns has none",
			Args:  cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				return writeResolv(c.Context(), h, socket, o)
			},
		},
		onlineCommand(&h, &socket, o),
		&cobra.Command{
			Use:   "set-hostname",
			Short: "Give the kernel the host name settings-applier rendered into /etc/hostname",
			Args:  cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				name, err := netdog.SetHostname(h.HostnameFile)
				if err != nil {
					return err
				}
				fmt.Fprintf(o.Out, "netdog: host name %s\n", name)
				return nil
			},
		},
		&cobra.Command{
			Use:   "generate-hostname",
			Short: "Print the generated host name as JSON: DHCP's, else reverse DNS, else ip-a-b-c-d",
			Args:  cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				n, err := h.Hostname(c.Context())
				if err != nil {
					return err
				}
				return emit(n)
			},
		},
		&cobra.Command{
			Use:   "node-ip",
			Short: "Print the primary interface's address as JSON (IPv4 first)",
			Args:  cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				ip, err := h.NodeIP()
				if err != nil {
					return err
				}
				return emit(ip.String())
			},
		},
	)
	return root
}

// onlineCommand is `netdog online`, run once network-online.target is
// reached.
// h is the command line's host, which --root changes before RunE.
func onlineCommand(h *netdog.Host, socket *string, o IO) *cobra.Command {
	var console string
	c := &cobra.Command{
		Use:   "online",
		Short: "After network-online.target: write resolv.conf and print the primary interface's state",
		Long: `online writes resolv.conf and prints the primary interface's addresses, default route and
DHCP name servers. With --console it also writes that line to the console device itself, at
once (a unit's journal+console output reaches the console only when journald gets to it).`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			say := func(w io.Writer, format string, a ...any) {
				fmt.Fprintf(w, format, a...)
				if console != "" {
					if f, err := os.OpenFile(console, os.O_WRONLY|os.O_APPEND, 0); err == nil {
						fmt.Fprintf(f, format, a...)
						f.Close()
					}
				}
			}
			if err := writeResolv(c.Context(), *h, *socket, o); err != nil {
				fmt.Fprintf(o.Err, "netdog: %v\n", err)
			}
			link, err := h.Primary()
			if err != nil {
				say(o.Err, "netdog: network NOT online: %v\n", err)
				return errReported
			}
			if !link.Online() {
				say(o.Err, "netdog: network NOT online: %s\n", link)
				return errReported
			}
			say(o.Out, "netdog: network online: %s\n", link)
			return nil
		},
	}
	c.Flags().StringVar(&console, "console", "", "also write the state line to this device (/dev/console)")
	return c
}

func writeResolv(ctx context.Context, h netdog.Host, socket string, o IO) error {
	dns, err := netdog.ReadDNS(ctx, socket)
	if err != nil {
		// Without the API (it is not up yet, or stopped), DHCP's servers
		// still make names resolve; the dns service's restart brings
		// settings.dns in once it is up.
		fmt.Fprintf(o.Err, "netdog: %v; resolv.conf from DHCP alone\n", err)
	}
	changed, err := h.WriteResolvConf(dns)
	if err != nil {
		return err
	}
	if changed {
		fmt.Fprintf(o.Out, "netdog: wrote %s\n", h.ResolvConf)
	}
	return nil
}

// Main runs netdog.
func Main(ctx context.Context, args []string) int {
	o := IO{Out: os.Stdout, Err: os.Stderr}
	cmd := NewCommand(netdog.SystemHost(), o)
	cmd.SetArgs(args)
	cmd.SetOut(o.Out)
	cmd.SetErr(o.Err)
	if err := cmd.ExecuteContext(ctx); err != nil {
		if !errors.Is(err, errReported) {
			fmt.Fprintf(o.Err, "netdog: %v\n", err)
		}
		return 1
	}
	return 0
}
