package cluster

import (
	"encoding/base64"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/devtools/k8stools"
)

// NewCommand returns `gantry cluster`.
func NewCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Run a Kubernetes control plane on this host for Gantry nodes",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newCreateCommand())
	return cmd
}

func newCreateCommand() *cobra.Command {
	dir, source, cacheDir := "run/cluster", "", ""
	ttl := 24 * time.Hour
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Start etcd, kube-apiserver, kube-controller-manager and kube-scheduler on 127.0.0.1 and print a node's user data",
		Long: `cluster create starts a real control plane (built by gantry k8s-tools) on the host's
loopback, its state in --dir (kept: the same folder is the same cluster), makes a bootstrap
token and prints the kubeconfig and the settings a Gantry node under gantry run needs to join
(the guest reaches the apiserver at 10.0.2.2). It runs until interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if source == "" {
				var err error
				if source, err = k8stools.FindSource(); err != nil {
					return err
				}
			}
			tl, err := k8stools.Ensure(ctx, k8stools.Options{Source: source, CacheDir: cacheDir, Log: cmd.ErrOrStderr()})
			if err != nil {
				return err
			}
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			c, err := Start(ctx, Options{Bin: BinariesFrom(tl.Path), Dir: abs, Log: cmd.ErrOrStderr()})
			if err != nil {
				return err
			}
			defer c.Stop()
			tok, err := c.CreateToken(ctx, ttl)
			if err != nil {
				return err
			}
			ca, err := c.CA()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Kubernetes %s control plane at %s\n\n", tl.Kubernetes, c.URL())
			fmt.Fprintf(out, "  export KUBECONFIG=%s\n  %s get nodes -o wide\n\n", c.Kubeconfig, tl.Path("kubectl"))
			fmt.Fprintf(out, "A node's user data (Kubernetes variants; bootstrap token valid for %v):\n\n", ttl)
			fmt.Fprintf(out, "[settings.kubernetes]\ncluster-name = \"gantry\"\napi-server = %q\ncluster-certificate = %q\nbootstrap-token = %q\n\n",
				c.GuestURL(), base64.StdEncoding.EncodeToString(ca), tok.String())
			fmt.Fprintln(out, "Ctrl-C stops the control plane; its state stays in", abs)
			<-ctx.Done()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", dir, "the control plane's state (certificates, etcd, logs, kubeconfigs)")
	f.StringVar(&source, "source", "", "Gantry source tree with tools/ (default: the one above the working folder)")
	f.StringVar(&cacheDir, "cache-dir", "", "gantry k8s-tools' cache (default: <user cache dir>/gantry/k8s)")
	f.DurationVar(&ttl, "token-ttl", ttl, "how long the bootstrap token is valid")
	return cmd
}
