package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
)

// CommandApplier hands committed keys to an external applier program: the
// keys go to its standard input as a JSON array (none and the --all flag
// when everything is to be applied), and the server waits for it, so its
// failure reaches the API caller.
type CommandApplier struct {
	Command []string
}

// Apply implements Applier.
func (a CommandApplier) Apply(ctx context.Context, keys []string) error {
	if len(a.Command) == 0 {
		return fmt.Errorf("no applier command configured")
	}
	args := append([]string(nil), a.Command[1:]...)
	var stdin []byte
	if keys == nil {
		args = append(args, "--all")
	} else {
		stdin, _ = json.Marshal(keys)
	}
	cmd := exec.CommandContext(ctx, a.Command[0], args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", a.Command[0], err, strings.TrimSpace(out.String()))
	}
	return nil
}
