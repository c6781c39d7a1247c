package multicall

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testBinary has two commands: hello prints its arguments to stdout, fail
// exits 3. Nil writers mean the process's own.
func testBinary(stdout, stderr io.Writer) Binary {
	out := stdout
	if out == nil {
		out = os.Stdout
	}
	return Binary{
		Name: "test-node",
		Commands: map[string]Func{
			"hello": func(_ context.Context, args []string) int {
				fmt.Fprintln(out, "hello", strings.Join(args, " "))
				return 0
			},
			"fail": func(context.Context, []string) int { return 3 },
		},
		Stdout: stdout,
		Stderr: stderr,
	}
}

// TestMain makes the test binary a multi-call binary when it is started
// under one of testBinary's names (through a link), so that
// TestRunThroughLinks can exec it.
func TestMain(m *testing.M) {
	switch filepath.Base(os.Args[0]) {
	case "test-node", "hello", "fail", "stranger":
		os.Exit(testBinary(nil, nil).Run(context.Background(), os.Args))
	}
	os.Exit(m.Run())
}

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name     string
		argv     []string
		code     int
		out, err string // substrings; "" = must be empty
	}{
		{"by argv[0]", []string{"/usr/bin/hello", "a", "b"}, 0, "hello a b\n", ""},
		{"by relative argv[0]", []string{"hello"}, 0, "hello \n", ""},
		{"exit code passes through", []string{"/usr/bin/fail"}, 3, "", ""},
		{"own name and command", []string{"/usr/bin/test-node", "hello", "x"}, 0, "hello x\n", ""},
		{"own name, flags go to the command", []string{"test-node", "hello", "--list"}, 0, "hello --list\n", ""},
		{"list", []string{"/usr/bin/test-node", "--list"}, 0, "fail\nhello\n", ""},
		{"list takes no arguments", []string{"test-node", "--list", "x"}, 2, "", "--list takes no arguments"},
		{"help", []string{"test-node", "--help"}, 0, "Commands: fail, hello", ""},
		{"no command", []string{"test-node"}, 2, "", "test-node: name a command"},
		{"no argv", nil, 2, "", "name a command"},
		{"unknown link name", []string{"/usr/bin/stranger", "x"}, 2, "",
			`test-node: unknown command "stranger" (started as "/usr/bin/stranger"); the commands are: fail, hello`},
		{"unknown command", []string{"test-node", "nope"}, 2, "", `test-node: unknown command "nope"; the commands are: fail, hello`},
		{"own name as command", []string{"test-node", "test-node"}, 2, "", `unknown command "test-node"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := testBinary(&out, &errb).Run(context.Background(), tc.argv)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, errb.String())
			}
			check := func(what, got, want string) {
				if want == "" && got != "" || !strings.Contains(got, want) {
					t.Errorf("%s %q, want %q", what, got, want)
				}
			}
			check("stdout", out.String(), tc.out)
			check("stderr", errb.String(), tc.err)
		})
	}
}

func TestCheck(t *testing.T) {
	ok := func(context.Context, []string) int { return 0 }
	for _, tc := range []struct {
		name string
		b    Binary
		err  string
	}{
		{"good", Binary{Name: "node", Commands: map[string]Func{"a": ok, "b-c.d": ok}}, ""},
		{"no name", Binary{Commands: map[string]Func{"a": ok}}, `binary name ""`},
		{"path name", Binary{Name: "usr/bin/node", Commands: map[string]Func{"a": ok}}, "plain file name"},
		{"no commands", Binary{Name: "node"}, "node has no commands"},
		{"slash", Binary{Name: "node", Commands: map[string]Func{"a/b": ok}}, `command "a/b": want a plain file name`},
		{"dot dot", Binary{Name: "node", Commands: map[string]Func{"..": ok}}, `command "..": want a plain file name`},
		{"flag", Binary{Name: "node", Commands: map[string]Func{"--list": ok}}, `cannot start with '-'`},
		{"own name", Binary{Name: "node", Commands: map[string]Func{"node": ok}}, "the binary's own name"},
		{"nil func", Binary{Name: "node", Commands: map[string]Func{"a": nil}}, `command "a" has no entry point`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.b.Check()
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("Check() = %v, want %q", err, tc.err)
			}
			if tc.err != "" {
				var errb bytes.Buffer
				tc.b.Stderr = &errb
				if code := tc.b.Run(context.Background(), []string{"a"}); code != 1 || !strings.Contains(errb.String(), tc.err) {
					t.Errorf("Run with a bad table: exit %d, stderr %q", code, errb.String())
				}
			}
		})
	}
}

// TestRunThroughLinks execs the test binary through symbolic links named
// after its commands, as the image's /usr/bin/<name> -> gantry-node links
// are used.
func TestRunThroughLinks(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, n := range []string{"test-node", "hello", "fail", "stranger"} {
		if err := os.Symlink(self, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		argv []string
		code int
		out  string
	}{
		{[]string{"hello", "from", "a link"}, 0, "hello from a link\n"},
		{[]string{"fail"}, 3, ""},
		{[]string{"test-node", "--list"}, 0, "fail\nhello\n"},
		{[]string{"test-node", "hello", "again"}, 0, "hello again\n"},
		{[]string{"stranger"}, 2, ""},
	} {
		cmd := exec.Command(filepath.Join(dir, tc.argv[0]), tc.argv[1:]...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := cmd.ProcessState.ExitCode()
		if err != nil && code < 0 {
			t.Fatalf("%v: %v", tc.argv, err)
		}
		if code != tc.code || out.String() != tc.out {
			t.Errorf("%v: exit %d, stdout %q, want %d and %q (stderr %q)", tc.argv, code, out.String(), tc.code, tc.out, errb.String())
		}
	}
}
