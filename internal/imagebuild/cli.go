package imagebuild

import (
	"errors"
	"fmt"
	"github.com/gantry-os/gantry/pkg/model"
	"io"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
)

// NewCommand returns `gantry build`.
func NewCommand() *cobra.Command {
	var (
		o                   Options
		variant, epoch, src string
		quiet               bool
	)
	cmd := &cobra.Command{
		Use:   "build [--variant NAME | --variant-dir PATH] [flags]",
		Short: "Build a variant's disk image and update artifacts",
		Long: "Build a Gantry image: the variant's Debian packages (pinned in packages.lock), the Gantry commands, an\n" +
			"erofs root with its dm-verity tree, the BOOT filesystem and the whole-disk image. Two builds from the\n" +
			"same inputs produce identical files. See docs/variants.md.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case variant != "" && o.VariantDir != "":
				return cli.UsageError{Err: errors.New("give --variant or --variant-dir, not both")}
			case variant == "" && o.VariantDir == "":
				variant = model.DefaultVariant
			}
			if epoch != "" {
				n, err := strconv.ParseInt(epoch, 10, 64)
				if err != nil || n < 0 {
					return cli.UsageError{Err: fmt.Errorf("--epoch %q: want seconds since 1970", epoch)}
				}
				o.Epoch = &n
			}
			o.Source = src
			if variant != "" {
				source, err := findSource(src, ".")
				if err != nil {
					return err
				}
				o.Source = source
				o.VariantDir = filepath.Join(source, "variants", variant)
				v, err := LoadVariant(o.VariantDir, "")
				if err != nil {
					return err
				}
				if v.Name != variant {
					return fmt.Errorf("%s names the variant %q, not %q", filepath.Join(o.VariantDir, VariantFile), v.Name, variant)
				}
			}
			if !quiet {
				o.Progress = cmd.ErrOrStderr()
			}
			if o.Store != "" && o.UpdateLock {
				return cli.UsageError{Err: errors.New("--store builds offline from the lock; it cannot --update-lock")}
			}
			res, err := Build(cmd.Context(), o)
			if err != nil {
				return err
			}
			// Drift is printed even with --quiet: the lock changed.
			printDrift(cmd.ErrOrStderr(), res)
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "image      %s\n", res.DiskImage)
			fmt.Fprintf(out, "artifacts  %s/{boot.img,root.img,hash.img} (gantry repo add-release --boot --root --hash)\n", res.OutDir)
			fmt.Fprintf(out, "root hash  %s\n", res.RootHash)
			fmt.Fprintf(out, "root       %s compressed, %d packages\n", mb(res.Root.CompressedBytes), res.PackageCount)
			if res.LockWritten {
				fmt.Fprintf(out, "lock       %s written; commit it\n", res.LockPath)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&variant, "variant", "", "variant in this source tree, variants/NAME (default "+model.DefaultVariant+")")
	f.StringVar(&o.VariantDir, "variant-dir", "", "variant folder anywhere (holds variant.toml, defaults.d, templates)")
	f.StringVar(&src, "source", "", "Gantry source tree whose commands go into the image (default: the module above the working folder)")
	f.StringVar(&o.Out, "out", "", "output folder (default <source>/build/<variant>)")
	f.StringVar(&o.CacheDir, "cache", "", "cache of .debs and apt lists (default <user cache>/gantry)")
	f.StringVar(&o.LockFile, "lock-file", "", "package lock (default <variant folder>/packages.lock)")
	f.BoolVar(&o.UpdateLock, "update-lock", false, "resolve the package closure again and rewrite the lock")
	f.BoolVar(&o.Locked, "locked", false, "fail instead of resolving when the lock is missing, stale or pins versions the archive lost (release builds)")
	f.StringVar(&o.Version, "version", "", "OS version (default: the variant's, else the source tree's)")
	f.StringVar(&o.BuildID, "build-id", "", "build ID (default: the source tree's git commit)")
	f.StringVar(&epoch, "epoch", "", "SOURCE_DATE_EPOCH for every timestamp (default: $SOURCE_DATE_EPOCH, else the last commit's time)")
	f.StringVar(&o.RootJSON, "root-json", "", "TUF root.json to install at /usr/share/gantry/root.json")
	f.StringVar(&o.Store, "store", "", "build from this package store alone, never asking the archive (a release's rebuild)")
	f.StringVar(&o.ExportStore, "export-store", "", "put every .deb of the build and its lock into this package store folder")
	f.BoolVar(&o.KeepWork, "keep-work", false, "keep the work folder (staging tree and intermediate files)")
	f.BoolVarP(&quiet, "quiet", "q", false, "no step display on stderr")
	return cmd
}

// printDrift tells, loudly, which lock lines a build changed and why.
func printDrift(w io.Writer, res *Result) {
	if len(res.Drift) == 0 {
		return
	}
	fmt.Fprintf(w, "\n*** PACKAGE DRIFT: %s was resolved again; %d line(s) changed:\n", res.LockPath, len(res.Drift))
	for _, d := range res.Drift {
		fmt.Fprintf(w, "***   %s\n", d)
	}
	fmt.Fprintf(w, "*** Review and commit the lock. A release build (--locked) refuses drift; --store rebuilds a release offline.\n\n")
}
