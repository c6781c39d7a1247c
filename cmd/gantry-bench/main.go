// Command gantry-bench runs Gantry's benchmarks against floors measured in
// the same run; see package bench.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/gantry-os/gantry/bench"
)

func main() {
	keys := flag.Int("keys", 1000, "live settings keys returned by GET /settings")
	n := flag.Int("n", 4000, "requests per operation")
	flag.Parse()
	dir, cleanup, err := bench.TempDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gantry-bench:", err)
		os.Exit(1)
	}
	defer cleanup()
	res, err := bench.RunAPI(context.Background(), bench.APIOptions{Keys: *keys, Requests: *n, Dir: dir, FloorRoute: "/__floor"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "gantry-bench:", err)
		cleanup()
		os.Exit(1)
	}
	bench.PrintAPI(os.Stdout, res)
}
