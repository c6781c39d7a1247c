package imagebuild

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/internal/cli"
)

func TestCommandLineErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"default variant elsewhere", []string{"--source", "/nonexistent"}, 1, "has no go.mod"},
		{"both", []string{"--variant", "metal-dev", "--variant-dir", "x"}, 2, "not both"},
		{"bad epoch", []string{"--variant", "metal-dev", "--epoch", "yesterday"}, 2, `--epoch "yesterday"`},
		{"arguments", []string{"metal-dev"}, 2, "unknown command"},
		{"unknown variant", []string{"--variant", "no-such-variant"}, 1, "read variant"},
		{"missing folder", []string{"--variant-dir", "/nonexistent/variant"}, 1, "read variant"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := cli.Execute(context.Background(), NewCommand(), tc.args, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tc.code, tc.want)
			}
		})
	}
}
