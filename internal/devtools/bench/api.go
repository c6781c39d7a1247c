// Package bench measures Gantry's components against floors measured in
// the same run, so that the figures are ratios that hold across machines.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gantry-os/gantry/internal/settings/apiserver"
	"github.com/gantry-os/gantry/pkg/datastore"
	"github.com/gantry-os/gantry/pkg/model"
	"github.com/gantry-os/gantry/pkg/osrelease"
)

// APIOptions tune the API benchmark.
type APIOptions struct {
	Keys       int // live settings keys that GET /settings returns
	Requests   int // requests per measured operation
	Dir        string
	FloorRoute string
}

// Stats summarizes the latencies of one operation.
type Stats struct {
	Name          string
	N             int
	P50, P90, P99 time.Duration
	Mean          time.Duration
}

func summarize(name string, d []time.Duration) Stats {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	pick := func(q float64) time.Duration { return d[int(q*float64(len(d)-1))] }
	return Stats{Name: name, N: len(d), P50: pick(0.5), P90: pick(0.9), P99: pick(0.99), Mean: sum / time.Duration(len(d))}
}

// APIResult is the outcome of the API benchmark.
type APIResult struct {
	Floor, GetSettings, GetAfterCommit, PatchCommit Stats
	BodyBytes                                       int
}

// GetRatio is GET /settings' median over the floor's.
func (r APIResult) GetRatio() float64 { return float64(r.GetSettings.P50) / float64(r.Floor.P50) }

// RunAPI serves the real API and an empty handler on one Unix socket, with
// a durable datastore in opts.Dir holding opts.Keys settings, and times
// requests to each, interleaved so that drift hits all alike.
func RunAPI(ctx context.Context, opts APIOptions) (APIResult, error) {
	var res APIResult
	store, err := datastore.Open(ctx, opts.Dir, datastore.OpenOptions{Create: true})
	if err != nil {
		return res, err
	}
	defer store.Close()
	sysctl := map[string]any{}
	for i := 0; i < opts.Keys-1; i++ {
		sysctl[fmt.Sprintf("bench.key%04d", i)] = fmt.Sprintf("%d", i*7)
	}
	m, err := model.ForVariant("metal-dev")
	if err != nil {
		return res, err
	}
	doc, _ := json.Marshal(map[string]any{"motd": "benchmark", "kernel": map[string]any{"sysctl": sysctl}})
	pairs, err := m.SettingsPairs(doc)
	if err != nil {
		return res, err
	}
	if err := store.Set(ctx, datastore.Live, pairs); err != nil {
		return res, err
	}
	srv := apiserver.New(apiserver.Config{Store: store, Model: m, Release: osrelease.Release{Arch: osrelease.Arch()},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+opts.FloorRoute, func(w http.ResponseWriter, r *http.Request) {})
	mux.Handle("/", srv.Handler())

	socket := filepath.Join(opts.Dir, "bench.sock")
	ln, err := apiserver.Listen(ctx, socket, -1)
	if err != nil {
		return res, err
	}
	hs := &http.Server{Handler: mux}
	go hs.Serve(ln)
	defer hs.Close()

	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	do := func(method, uri, body string) (time.Duration, int, error) {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequestWithContext(ctx, method, "http://localhost"+uri, rd)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, 0, err
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			return 0, 0, fmt.Errorf("%s %s: status %d", method, uri, resp.StatusCode)
		}
		return time.Since(start), int(n), nil
	}
	// Warm up connections and caches.
	for i := 0; i < 50; i++ {
		do("GET", opts.FloorRoute, "")
		do("GET", "/settings", "")
	}
	var floor, get, miss, commit []time.Duration
	for i := 0; i < opts.Requests; i++ {
		d, _, err := do("GET", opts.FloorRoute, "")
		if err != nil {
			return res, err
		}
		floor = append(floor, d)
		d, n, err := do("GET", "/settings", "")
		if err != nil {
			return res, err
		}
		get = append(get, d)
		res.BodyBytes = n
	}
	// Commits are slower; a quarter as many keep the run short. The GET
	// after each commit pays for rebuilding the cached body.
	for i := 0; i < opts.Requests/4; i++ {
		tx := fmt.Sprintf("bench%d", i)
		d1, _, err := do("PATCH", "/settings?tx="+tx, fmt.Sprintf(`{"motd": "benchmark %d"}`, i))
		if err != nil {
			return res, err
		}
		d2, _, err := do("POST", "/tx/commit?tx="+tx, "")
		if err != nil {
			return res, err
		}
		commit = append(commit, d1+d2)
		d, _, err := do("GET", "/settings", "")
		if err != nil {
			return res, err
		}
		miss = append(miss, d)
	}
	res.Floor = summarize("empty handler (floor)", floor)
	res.GetSettings = summarize(fmt.Sprintf("GET /settings (%d keys)", opts.Keys), get)
	res.GetAfterCommit = summarize("GET /settings right after a commit", miss)
	res.PatchCommit = summarize("PATCH /settings + POST /tx/commit (durable)", commit)
	return res, nil
}

// PrintAPI writes the result as a table with the goals.
func PrintAPI(w io.Writer, r APIResult) {
	fmt.Fprintf(w, "%-46s %8s %10s %10s %10s %10s\n", "operation", "n", "p50", "p90", "p99", "mean")
	for _, s := range []Stats{r.Floor, r.GetSettings, r.GetAfterCommit, r.PatchCommit} {
		fmt.Fprintf(w, "%-46s %8d %10s %10s %10s %10s\n", s.Name, s.N, s.P50.Round(time.Microsecond), s.P90.Round(time.Microsecond), s.P99.Round(time.Microsecond), s.Mean.Round(time.Microsecond))
	}
	fmt.Fprintf(w, "\nGET /settings body: %d bytes\n", r.BodyBytes)
	fmt.Fprintf(w, "GET /settings p50 / floor p50 = %.2fx (goal <= 2x)\n", r.GetRatio())
	fmt.Fprintf(w, "GET /settings after a commit p50 / floor p50 = %.2fx\n", float64(r.GetAfterCommit.P50)/float64(r.Floor.P50))
	fmt.Fprintf(w, "PATCH+commit p50 = %s (goal <= 5ms)\n", r.PatchCommit.P50.Round(time.Microsecond))
}

// TempDir makes a directory for a benchmark's datastore.
func TempDir() (string, func(), error) {
	d, err := os.MkdirTemp("", "gantry-bench-")
	return d, func() { os.RemoveAll(d) }, err
}
