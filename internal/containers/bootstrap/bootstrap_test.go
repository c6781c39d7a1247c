package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name      string
		entries   map[string]Entry
		fail      map[string]bool
		ran       []string
		setOff    []string
		states    []string // per name, in name order
		blocked   string
		wantErr   string
		console   []string
		noConsole []string
	}{
		{
			name: "modes",
			entries: map[string]Entry{
				"a-once": {Mode: "once"}, "b-always": {Mode: "always"}, "c-off": {Mode: "off"}, "d-unset": {},
			},
			ran: []string{"a-once", "b-always"}, setOff: []string{"a-once"},
			states:  []string{"succeeded", "succeeded", "skipped", "skipped"},
			console: []string{"a-once (mode once) succeeded", "b-always (mode always) succeeded"},
		},
		{
			name:    "a failed once stays once, a non-essential failure goes on",
			entries: map[string]Entry{"a": {Mode: "once"}, "b": {Mode: "always"}},
			fail:    map[string]bool{"a": true},
			ran:     []string{"a", "b"},
			states:  []string{"failed", "succeeded"},
			console: []string{"bootstrap-containers a (mode once) FAILED: boom"}, noConsole: []string{"the boot stops"},
		},
		{
			name:    "an essential failure stops the run and the boot",
			entries: map[string]Entry{"a": {Mode: "always", Essential: true}, "b": {Mode: "always"}},
			fail:    map[string]bool{"a": true},
			ran:     []string{"a"},
			states:  []string{"failed", "skipped"}, blocked: "a",
			wantErr: "essential bootstrap-containers a failed: boom",
			console: []string{"a (mode always, essential) FAILED: boom", "the boot stops here"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ran, off []string
			var con bytes.Buffer
			path := filepath.Join(t.TempDir(), "status.json")
			rep, err := Run(context.Background(), tc.entries, Options{
				Group: Containers, Console: &con, StatusPath: path,
				Run: func(_ context.Context, name string, _ Entry) error {
					ran = append(ran, name)
					if tc.fail[name] {
						return errors.New("boom")
					}
					return nil
				},
				SetMode: func(_ context.Context, name, mode string) error {
					if mode == "off" {
						off = append(off, name)
					}
					return nil
				},
			})
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error %v, want %q", err, tc.wantErr)
			}
			if !slices.Equal(ran, tc.ran) || !slices.Equal(off, tc.setOff) {
				t.Errorf("ran %v set off %v, want %v %v", ran, off, tc.ran, tc.setOff)
			}
			var states []string
			for _, r := range rep.Results {
				states = append(states, r.State)
			}
			if !slices.Equal(states, tc.states) || rep.Blocked != tc.blocked {
				t.Errorf("states %v blocked %q, want %v %q", states, rep.Blocked, tc.states, tc.blocked)
			}
			for _, w := range tc.console {
				if !strings.Contains(con.String(), w) {
					t.Errorf("console lacks %q:\n%s", w, con.String())
				}
			}
			for _, w := range tc.noConsole {
				if strings.Contains(con.String(), w) {
					t.Errorf("console has %q:\n%s", w, con.String())
				}
			}
			back, err := ReadReport(path)
			if err != nil || back == nil || len(back.Results) != len(rep.Results) || back.Blocked != rep.Blocked {
				t.Errorf("status file: %+v, %v", back, err)
			}
		})
	}
	if rep, err := ReadReport(filepath.Join(t.TempDir(), "none.json")); rep != nil || err != nil {
		t.Errorf("a missing report: %v %v", rep, err)
	}
}

func TestCheckCommand(t *testing.T) {
	if err := CheckCommand([]string{"apiclient", "set", "motd=x"}); err != nil {
		t.Error(err)
	}
	for _, c := range [][]string{nil, {"sh", "-c", "x"}, {"/usr/bin/apiclient"}} {
		if CheckCommand(c) == nil {
			t.Errorf("%q accepted", c)
		}
	}
}
