// Command gantry-bench runs Gantry's benchmarks against floors measured in
// the same run; see package bench.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/gantry-os/gantry/internal/devtools/bench"
	"github.com/gantry-os/gantry/internal/update/updog"
)

func main() {
	keys := flag.Int("keys", 1000, "live settings keys returned by GET /settings")
	n := flag.Int("n", 4000, "requests per operation")
	suite := flag.String("suite", "api", "api (settings API), update (writing a target into a partition) or boot (image boot vs the kernel's floor)")
	imageMiB := flag.Int("image-mib", 1024, "image size for -suite update")
	child := flag.Bool("child-updog", false, "internal: run as updog (for -suite update)")
	buildDir := flag.String("build-dir", "build/metal-dev", "image build to boot (for -suite boot)")
	runs := flag.Int("runs", 5, "boots of each kind (for -suite boot)")
	flag.Parse()
	if *child {
		os.Exit(updog.Main(context.Background(), flag.Args(), updog.OpenSignpost))
	}
	dir, cleanup, err := bench.TempDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gantry-bench:", err)
		os.Exit(1)
	}
	defer cleanup()
	if *suite == "boot" {
		res, err := bench.RunBoot(context.Background(), *buildDir, dir, *runs)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gantry-bench:", err)
			cleanup()
			os.Exit(1)
		}
		bench.PrintBoot(os.Stdout, res)
		return
	}
	if *suite == "update" {
		self, _ := os.Executable()
		res, err := bench.RunUpdate(context.Background(), bench.UpdateOptions{Dir: dir, ImageMiB: *imageMiB, Self: self})
		if err != nil {
			fmt.Fprintln(os.Stderr, "gantry-bench:", err)
			cleanup()
			os.Exit(1)
		}
		bench.PrintUpdate(os.Stdout, res)
		return
	}
	res, err := bench.RunAPI(context.Background(), bench.APIOptions{Keys: *keys, Requests: *n, Dir: dir, FloorRoute: "/__floor"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "gantry-bench:", err)
		cleanup()
		os.Exit(1)
	}
	bench.PrintAPI(os.Stdout, res)
}
