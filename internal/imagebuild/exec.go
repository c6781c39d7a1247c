package imagebuild

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/gantry-os/gantry/internal/procgroup"
)

// command is a helper program run by the build.
type command struct {
	name string
	args []string
	dir  string
	// env is added to the builder's environment.
	env []string
	// stdout, when set, receives the program's output instead of the
	// returned buffer.
	stdout *os.File
}

// run runs c in its own process group (cancelled with ctx) and returns its
// standard output. A failure names the program, its arguments and the end of
// its standard error.
func (c command) run(ctx context.Context) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.name, c.args...)
	procgroup.Configure(cmd)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), c.env...)
	var out, errb bytes.Buffer
	if c.stdout != nil {
		cmd.Stdout = c.stdout
	} else {
		cmd.Stdout = &out
	}
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return out.Bytes(), fmt.Errorf("%s: %w%s", c.String(), err, tail(out.String()+"\n"+errb.String()))
	}
	return out.Bytes(), nil
}

// String is the command line, shortened for messages.
func (c command) String() string {
	s := strings.Join(append([]string{c.name}, c.args...), " ")
	if len(s) > 300 {
		s = s[:300] + " ..."
	}
	return s
}

// tail returns the last lines of a failed program's output, for errors.
func tail(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return ":\n    " + strings.Join(lines, "\n    ")
}

// needTool checks that a host program is on PATH, naming the Debian
// package that has it.
func needTool(name, pkg string) error {
	if _, err := exec.LookPath(name); err != nil {
		return fmt.Errorf("%s is not installed (apt-get install %s)", name, pkg)
	}
	return nil
}
