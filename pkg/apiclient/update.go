package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// UpdateStatus is the part of GET /updates/status the client reads; the
// whole document is printed as it came.
type UpdateStatus struct {
	UpdateState       string `json:"update_state"`
	MostRecentCommand *struct {
		CmdType    string    `json:"cmd_type"`
		CmdStatus  string    `json:"cmd_status"`
		Timestamp  time.Time `json:"timestamp"`
		ExitStatus *int      `json:"exit_status"`
		Stderr     *string   `json:"stderr"`
	} `json:"most_recent_command"`
}

// pollPolicy says how often and how long to wait for a command.
type pollPolicy struct {
	interval time.Duration
	attempts int
}

var (
	pollRefresh  = pollPolicy{100 * time.Millisecond, 100}
	pollPrepare  = pollPolicy{500 * time.Millisecond, 1200}
	pollActivate = pollPolicy{100 * time.Millisecond, 50}
)

// status reads the update status; a 404 (never initialized) gives nil.
func (c *Client) status(ctx context.Context) (*UpdateStatus, []byte, error) {
	code, body, err := c.Do(ctx, http.MethodGet, "/updates/status", nil)
	if err != nil {
		return nil, nil, err
	}
	switch code {
	case http.StatusOK:
		var s UpdateStatus
		if err := json.Unmarshal(body, &s); err != nil {
			return nil, nil, fmt.Errorf("update status: %w", err)
		}
		return &s, body, nil
	case http.StatusNotFound:
		return nil, nil, nil
	case http.StatusLocked:
		return nil, nil, errLocked
	}
	return nil, nil, &StatusError{Code: code, Method: "GET", URI: "/updates/status", Body: string(body)}
}

var errLocked = errors.New("update status is locked by a running command")

// UpdateAction sends an update action (refresh-updates, prepare-update,
// activate-update, deactivate-update) and waits until the status records
// that command with a new timestamp; it fails unless the command succeeded.
// It returns the final status document.
func (c *Client) UpdateAction(ctx context.Context, action, cmdType string) ([]byte, *UpdateStatus, error) {
	policy := map[string]pollPolicy{"refresh": pollRefresh, "prepare": pollPrepare}[cmdType]
	if policy.attempts == 0 {
		policy = pollActivate
	}
	before, _, err := c.status(ctx)
	if err != nil && !errors.Is(err, errLocked) {
		return nil, nil, err
	}
	var since time.Time
	if before != nil && before.MostRecentCommand != nil {
		since = before.MostRecentCommand.Timestamp
	}
	if _, err := c.Raw(ctx, http.MethodPost, "/actions/"+action, nil); err != nil {
		return nil, nil, err
	}
	failures := 0
	for i := 0; i < policy.attempts; i++ {
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(policy.interval):
		}
		st, body, err := c.status(ctx)
		switch {
		case errors.Is(err, errLocked):
			continue // still running
		case err != nil:
			if failures++; failures > 5 {
				return nil, nil, err
			}
			continue
		case st == nil || st.MostRecentCommand == nil:
			continue
		}
		rc := st.MostRecentCommand
		if rc.CmdType != cmdType || !rc.Timestamp.After(since) {
			continue
		}
		if rc.CmdStatus != "Success" {
			msg := ""
			if rc.Stderr != nil {
				msg = *rc.Stderr
			}
			return body, st, fmt.Errorf("%s failed: %s", cmdType, msg)
		}
		return body, st, nil
	}
	return nil, nil, fmt.Errorf("timed out waiting for %s to finish", cmdType)
}
