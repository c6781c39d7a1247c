package migration

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/gantry-os/gantry/pkg/osrelease"
)

// Exit codes of a migration binary.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// Run is the whole main of a migration binary:
//
//	func main() { os.Exit(migration.Run(context.Background(), myMigration{}, os.Args[1:])) }
//
// It takes --forward or --backward, --source-datastore DIR and
// --target-datastore DIR (version directories holding datastore.db) and an
// optional --os-release PATH, migrates the source into a new datastore at the
// target, and returns the exit code: 0 on success, 1 on failure (with a
// message naming the migration, the direction and the section that failed),
// 2 on a usage error. The binary's file name names it in messages.
func Run(ctx context.Context, m Migration, args []string) int {
	return run(ctx, m, filepath.Base(os.Args[0]), args, os.Stderr)
}

func run(ctx context.Context, m Migration, name string, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		forward, backward bool
		source, target    string
		releasePath       string
	)
	fs.BoolVar(&forward, "forward", false, "migrate to the newer version")
	fs.BoolVar(&backward, "backward", false, "migrate back to the older version")
	fs.StringVar(&source, "source-datastore", "", "version `directory` of the datastore to read (opened read-only)")
	fs.StringVar(&target, "target-datastore", "", "version `directory` to write the new datastore into (must hold none yet)")
	fs.StringVar(&releasePath, "os-release", osrelease.DefaultPath, "release `file` whose variant, version and arch are injected as os.* keys")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s --forward|--backward --source-datastore DIR --target-datastore DIR [--os-release PATH]\n", name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "%s: %s\n", name, fmt.Sprintf(format, a...))
		fs.Usage()
		return ExitUsage
	}
	var dir Direction
	switch {
	case fs.NArg() > 0:
		return usage("unexpected arguments %q", fs.Args())
	case forward && backward:
		return usage("--forward and --backward exclude each other")
	case forward:
		dir = Forward
	case backward:
		dir = Backward
	default:
		return usage("one of --forward or --backward is required")
	}
	if source == "" || target == "" {
		return usage("--source-datastore and --target-datastore are required")
	}
	explicitRelease := false
	fs.Visit(func(f *flag.Flag) { explicitRelease = explicitRelease || f.Name == "os-release" })

	// The migrator timestamps each line of a migration's output itself.
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	rel, err := osrelease.Read(releasePath)
	if err != nil {
		if explicitRelease || !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(stderr, "%s %s: %v\n", name, dir, err)
			return ExitFailure
		}
		log.Warn("no release file; only os.arch is injected", "path", releasePath)
		rel = osrelease.Release{Arch: osrelease.Arch()}
	}
	_, err = Migrate(ctx, m, Options{Name: name, Direction: dir, Source: source, Target: target, Release: rel, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return ExitFailure
	}
	return ExitOK
}
