package k8stools

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

// NewCommand returns `gantry k8s-tools`.
func NewCommand() *cobra.Command {
	var o Options
	asJSON, path := false, ""
	cmd := &cobra.Command{
		Use:   "k8s-tools",
		Short: "Build (or find in the cache) the Kubernetes and container runtime binaries of tools/, and print their paths",
		Long: `k8s-tools builds the binaries of the tools modules (tools/k8s: kubelet, etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kubectl; tools/runtime: containerd, its runc shim, the CNI
plugins; all from the Go module proxy) into a cache outside the source tree, one folder per module
keyed by its go.mod and go.sum and the Go toolchain, and prints each binary's path. A cached build
is reused at once; a cold one takes about 15 minutes on 2 cores.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Source == "" {
				src, err := FindSource()
				if err != nil {
					return err
				}
				o.Source = src
			}
			o.Log = cmd.ErrOrStderr()
			t, err := Ensure(cmd.Context(), o)
			if err != nil {
				return err
			}
			if path != "" {
				p := t.Path(path)
				if p == "" {
					return fmt.Errorf("no binary %q in the tools modules", path)
				}
				fmt.Fprintln(cmd.OutOrStdout(), p)
				return nil
			}
			if asJSON {
				type build struct {
					Dir string `json:"dir"`
					*Build
				}
				var bs []build
				for _, b := range t.Builds {
					bs = append(bs, build{b.Dir, b})
				}
				out, _ := json.MarshalIndent(bs, "", "  ")
				fmt.Fprintln(cmd.OutOrStdout(), string(out))
				return nil
			}
			for _, b := range Binaries() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", b.Name, t.Path(b.Name))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Source, "source", "", "Gantry source tree (default: the one above the working folder)")
	f.StringVar(&o.CacheDir, "cache-dir", "", "cache folder (default: <user cache dir>/gantry/k8s)")
	f.BoolVar(&asJSON, "json", false, "print each module's build (folder, versions, digests) as JSON")
	f.StringVar(&path, "path", "", "print only this binary's path, e.g. --path kubelet")
	return cmd
}

// FindSource is the nearest folder above the working folder that holds
// the tools module.
func FindSource() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, ModuleDir, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no Gantry source tree with %s above %s (pass --source)", ModuleDir, wd)
		}
	}
}
