// Package multicall runs one of several commands linked into a single
// binary, as busybox does. The command is the base name the binary was
// started under (argv[0]): the image links /usr/bin/signpost and the other
// node commands to /usr/bin/gantry-node, which holds them all. Started
// under its own name, the binary takes the command as its first argument
// instead (`gantry-node signpost status`), and `--list` prints the commands
// it has, one a line, which is how the image builder checks a variant's
// command list against the binary.
package multicall

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ListFlag, given as the only argument to the binary under its own name,
// prints the command names, one a line, in order.
const ListFlag = "--list"

// Func is a command's entry point: it gets the arguments after the command
// name and returns the process exit code.
type Func func(ctx context.Context, args []string) int

// Binary is a multi-call binary: its own name and its commands.
type Binary struct {
	// Name is the binary's own file name, e.g. gantry-node.
	Name string
	// Commands maps each command name to its entry point.
	Commands map[string]Func
	// Stdout and Stderr receive the binary's own output (the list, usage
	// and errors); nil means os.Stdout and os.Stderr. The commands write
	// wherever they write.
	Stdout, Stderr io.Writer
}

// Names returns the command names in order.
func (b Binary) Names() []string {
	names := make([]string, 0, len(b.Commands))
	for n := range b.Commands {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Check reports a table that cannot dispatch: no name, a command without
// an entry point, or a command name that is not a plain file name or that
// is the binary's own name or a flag.
func (b Binary) Check() error {
	if b.Name == "" || strings.ContainsRune(b.Name, '/') {
		return fmt.Errorf("multicall: binary name %q: want a plain file name", b.Name)
	}
	if len(b.Commands) == 0 {
		return fmt.Errorf("multicall: %s has no commands", b.Name)
	}
	for _, n := range b.Names() {
		switch {
		case n == "" || n == "." || n == ".." || strings.ContainsRune(n, '/'):
			return fmt.Errorf("multicall: command %q: want a plain file name", n)
		case strings.HasPrefix(n, "-"):
			return fmt.Errorf("multicall: command %q: a name cannot start with '-'", n)
		case n == b.Name:
			return fmt.Errorf("multicall: command %q: it is the binary's own name", n)
		case b.Commands[n] == nil:
			return fmt.Errorf("multicall: command %q has no entry point", n)
		}
	}
	return nil
}

// Run runs the command argv names and returns the exit code. argv is the
// whole argument vector, os.Args: the command is filepath.Base(argv[0]),
// or, when that is the binary's own name, argv[1]. A missing or unknown
// command is a usage error (exit 2) that lists the commands.
func (b Binary) Run(ctx context.Context, argv []string) int {
	stdout, stderr := b.Stdout, b.Stderr
	if stdout == nil {
		stdout = os.Stdout
	}
	if stderr == nil {
		stderr = os.Stderr
	}
	if err := b.Check(); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	name, args := b.Name, []string(nil)
	if len(argv) > 0 {
		name, args = filepath.Base(argv[0]), argv[1:]
	}
	via := ""
	if name == b.Name {
		if len(args) == 0 {
			fmt.Fprintf(stderr, "%s: name a command\n\n%s", b.Name, b.usage())
			return 2
		}
		switch args[0] {
		case ListFlag:
			if len(args) > 1 {
				fmt.Fprintf(stderr, "%s: %s takes no arguments, got %q\n", b.Name, ListFlag, args[1:])
				return 2
			}
			for _, n := range b.Names() {
				fmt.Fprintln(stdout, n)
			}
			return 0
		case "-h", "--help", "help":
			fmt.Fprint(stdout, b.usage())
			return 0
		}
		name, args = args[0], args[1:]
	} else {
		via = fmt.Sprintf(" (started as %q)", argv[0])
	}
	f, ok := b.Commands[name]
	if !ok {
		fmt.Fprintf(stderr, "%s: unknown command %q%s; the commands are: %s\n", b.Name, name, via, strings.Join(b.Names(), ", "))
		return 2
	}
	return f(ctx, args)
}

// usage is the binary's help text.
func (b Binary) usage() string {
	return fmt.Sprintf(`Usage:
  %[1]s <command> [arguments]
  <command> [arguments], through a link to %[1]s named <command>
  %[1]s %[2]s, to print the command names, one a line

Commands: %[3]s
`, b.Name, ListFlag, strings.Join(b.Names(), ", "))
}
