package imagebuild

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress prints the build's steps and their timings. It is safe for the
// steps that run concurrently (the Go build runs beside the package work).
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	total int
	n     int
	start time.Time
	// timings keeps each finished step's duration, in order.
	timings []StepTiming
}

// StepTiming is one finished step and how long it took.
type StepTiming struct {
	Step     string        `json:"step"`
	Duration time.Duration `json:"duration"`
}

func newProgress(w io.Writer, total int) *progress {
	if w == nil {
		w = io.Discard
	}
	return &progress{w: w, total: total, start: time.Now()}
}

// addSteps counts n more steps (known only once the variant is read).
func (p *progress) addSteps(n int) {
	p.mu.Lock()
	p.total += n
	p.mu.Unlock()
}

// step announces a step and returns the function that ends it with a short
// detail ("64 packages, 73.1 MB") or the step's error.
func (p *progress) step(name string) func(detail string, err error) {
	p.mu.Lock()
	p.n++
	n := p.n
	fmt.Fprintf(p.w, "[%2d/%d] %s ...\n", n, p.total, name)
	p.mu.Unlock()
	t0 := time.Now()
	return func(detail string, err error) {
		d := time.Since(t0)
		p.mu.Lock()
		defer p.mu.Unlock()
		p.timings = append(p.timings, StepTiming{Step: name, Duration: d})
		switch {
		case err != nil:
			fmt.Fprintf(p.w, "[%2d/%d] %s FAILED after %s\n", n, p.total, name, round(d))
		case detail != "":
			fmt.Fprintf(p.w, "[%2d/%d] %s: %s (%s)\n", n, p.total, name, detail, round(d))
		default:
			fmt.Fprintf(p.w, "[%2d/%d] %s (%s)\n", n, p.total, name, round(d))
		}
	}
}

// logf prints a note between steps.
func (p *progress) logf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "        "+format+"\n", args...)
}

func (p *progress) done() []StepTiming {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "build finished in %s\n", round(time.Since(p.start)))
	return append([]StepTiming(nil), p.timings...)
}

func round(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

// mb formats a byte count in MB (10^6), as apt and the docs do.
func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
