package powerbutton

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeButton makes a fake sysfs tree with one LNXPWRBN power button whose
// node under dev is a FIFO, and returns the FIFO opened for writing: what
// the test writes there, Run reads as the kernel's events.
func fakeButton(t *testing.T, sys, dev, event string) *os.File {
	t.Helper()
	fakeSysfs(t, sys, inputDevice{input: "input0", event: event, name: "Power Button", phys: "LNXPWRBN/button/input0",
		devname: "input/" + event})
	return fifo(t, filepath.Join(dev, "input", event))
}

func fifo(t *testing.T, path string) *os.File {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, syscall.Mkfifo(path, 0o600))
	// O_RDWR opens a FIFO without waiting for a reader.
	w, err := os.OpenFile(path, os.O_RDWR, 0)
	must(t, err)
	t.Cleanup(func() { w.Close() })
	return w
}

// runner runs Run in the background and records its power-off calls.
type runner struct {
	calls chan struct{}
	ready chan struct{}
	done  chan error
}

func startRun(t *testing.T, ctx context.Context, cfg Config, fail func(n int) error) *runner {
	t.Helper()
	need64LE(t)
	r := &runner{calls: make(chan struct{}, 16), ready: make(chan struct{}), done: make(chan error, 1)}
	n := 0
	cfg.PowerOff = func(context.Context) (string, error) {
		n++
		r.calls <- struct{}{}
		if fail != nil {
			if err := fail(n); err != nil {
				return "", err
			}
		}
		return "poweroff.target (test)", nil
	}
	cfg.Ready = func() { close(r.ready) }
	go func() { r.done <- Run(ctx, cfg) }()
	select {
	case <-r.ready:
	case err := <-r.done:
		t.Fatalf("Run ended before it was ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run never got ready")
	}
	return r
}

// expectCalls waits for n power-off calls and then checks no other comes.
func (r *runner) expectCalls(t *testing.T, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-r.calls:
		case <-time.After(5 * time.Second):
			t.Fatalf("power-off call %d of %d never came", i+1, n)
		}
	}
	select {
	case <-r.calls:
		t.Fatalf("more than %d power-off calls", n)
	case <-time.After(200 * time.Millisecond):
	}
}

func write(t *testing.T, w *os.File, events ...[]byte) {
	t.Helper()
	for _, e := range events {
		if _, err := w.Write(e); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRunPowersOffOnPress(t *testing.T) {
	sys, dev := t.TempDir(), t.TempDir()
	w := fakeButton(t, sys, dev, "event0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The first request fails (systemd busy, say); a second press retries.
	r := startRun(t, ctx, Config{Sysfs: sys, Dev: dev}, func(n int) error {
		if n == 1 {
			return errors.New("connect to systemd: refused")
		}
		return nil
	})

	// Nothing but a press of KEY_POWER counts.
	write(t, w,
		rawEvent(1, 0, 0, 0, 0),   // SYN_REPORT
		rawEvent(1, 0, 1, 116, 0), // release
		rawEvent(1, 0, 1, 116, 2), // autorepeat
		rawEvent(1, 0, 1, 30, 1),  // KEY_A
		rawEvent(1, 0, 4, 116, 1), // EV_MSC
	)
	r.expectCalls(t, 0)
	write(t, w, rawEvent(2, 0, 1, 116, 1), rawEvent(2, 0, 0, 0, 0), rawEvent(2, 5, 1, 116, 0), rawEvent(2, 5, 0, 0, 0))
	r.expectCalls(t, 1)
	write(t, w, rawEvent(3, 0, 1, 116, 1), rawEvent(3, 0, 0, 0, 0))
	r.expectCalls(t, 1)

	cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestRunWatchesEveryButton(t *testing.T) {
	sys, dev := t.TempDir(), t.TempDir()
	fakeSysfs(t, sys,
		inputDevice{input: "input3", event: "event3", name: "Power Button", phys: "PNP0C0C/button/input0"},
		inputDevice{input: "input4", event: "event4", name: "Power Button", phys: "LNXPWRBN/button/input0"},
	)
	w3 := fifo(t, filepath.Join(dev, "input", "event3"))
	w4 := fifo(t, filepath.Join(dev, "input", "event4"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := startRun(t, ctx, Config{Sysfs: sys, Dev: dev}, nil)
	write(t, w4, rawEvent(1, 0, 1, 116, 1))
	r.expectCalls(t, 1)
	write(t, w3, rawEvent(2, 0, 1, 116, 1))
	r.expectCalls(t, 1)
}

func TestRunDeviceGone(t *testing.T) {
	sys, dev := t.TempDir(), t.TempDir()
	w := fakeButton(t, sys, dev, "event7")
	r := startRun(t, context.Background(), Config{Sysfs: sys, Dev: dev}, nil)
	w.Close() // the only writer: the reader sees the end
	select {
	case err := <-r.done:
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dev, "input", "event7")) {
			t.Fatalf("Run = %v, want an error naming the device", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not notice the device ended")
	}
}

// builtinKernel is a module tree in which the button driver and evdev are
// built into the kernel, so loading them inserts nothing.
func builtinKernel(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "6.1.0-test")
	must(t, os.MkdirAll(filepath.Join(dir, "kernel"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "kernel", "unrelated.ko.xz"), []byte("x"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "modules.builtin"),
		[]byte("kernel/drivers/acpi/button.ko\nkernel/drivers/input/evdev.ko\n"), 0o644))
	return dir
}

func TestRunWaitsForButtonAfterModules(t *testing.T) {
	sys, dev := filepath.Join(t.TempDir(), "sys"), t.TempDir()
	insert := func(p string) (bool, error) { t.Errorf("inserted %s, which is built in", p); return false, nil }
	// The device appears in sysfs a moment after the modules are
	// "loaded", as the kernel's probe makes it.
	staged := filepath.Join(t.TempDir(), "sys")
	w := fakeButton(t, staged, dev, "event0")
	go func() {
		time.Sleep(300 * time.Millisecond)
		os.Symlink(staged, sys)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := startRun(t, ctx, Config{Sysfs: sys, Dev: dev, Modules: DefaultModules(), ModuleDir: builtinKernel(t), Insert: insert}, nil)
	write(t, w, rawEvent(1, 0, 1, 116, 1))
	r.expectCalls(t, 1)
}

func TestRunErrors(t *testing.T) {
	need64LE(t)
	for _, tc := range []struct {
		name    string
		modules []string
		dir     func(t *testing.T) string
		want    string
	}{
		{"no button, no modules", nil, builtinKernel, `no "Power Button" input device`},
		{"no button after loading", DefaultModules(), builtinKernel, "the machine may have no ACPI power button"},
		{"module tree missing", DefaultModules(), func(t *testing.T) string { return filepath.Join(t.TempDir(), "nowhere") }, "nowhere"},
		{"module neither file nor built in", []string{"evdev", "hid_power"}, builtinKernel, "module hid_power not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := t.TempDir()
			fakeSysfs(t, sys, inputDevice{input: "input1", event: "event1", name: "Sleep Button"})
			err := Run(context.Background(), Config{Sysfs: sys, Dev: t.TempDir(), Modules: tc.modules, ModuleDir: tc.dir(t),
				DeviceTimeout: 300 * time.Millisecond,
				Insert:        func(p string) (bool, error) { return false, errors.New("no insert expected") },
				PowerOff:      func(context.Context) (string, error) { t.Error("powered off"); return "", nil },
				Ready:         func() { t.Error("ready without a button") },
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestLoadModulesDebianKernel resolves the real button and evdev modules
// of Debian's cloud kernel (the one the QEMU tests extract), skipping one
// that sysfs shows as loaded. It is skipped when no kernel was extracted,
// even under CI: initrd's TestBootQEMU extracts it (and fails under CI when
// it cannot), and `go test ./...` may run this package before that test.
func TestLoadModulesDebianKernel(t *testing.T) {
	var dir string
	roots := []string{os.Getenv("GANTRY_TEST_KERNEL_ROOT")}
	if c := os.Getenv("GANTRY_TEST_CACHE"); c != "" {
		roots = append(roots, filepath.Join(c, "kernel", "*", "root"))
	} else if c, err := os.UserCacheDir(); err == nil {
		roots = append(roots, filepath.Join(c, "gantry-test", "kernel", "*", "root"))
	}
	for _, r := range roots {
		if m, _ := filepath.Glob(filepath.Join(r, "lib", "modules", "*", "kernel", "drivers", "acpi", "button.ko")); r != "" && len(m) > 0 {
			dir = filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(m[0]))))
			break
		}
	}
	if dir == "" {
		t.Skip("no extracted Debian kernel (go test ./initrd -run TestBootQEMU fills the cache, or set GANTRY_TEST_KERNEL_ROOT)")
	}
	sys := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(sys, "module", "evdev"), 0o755))
	var inserted []string
	got, err := loadModules(Config{Sysfs: sys, ModuleDir: dir, Modules: DefaultModules(), Insert: func(p string) (bool, error) {
		inserted = append(inserted, strings.TrimPrefix(p, dir+"/"))
		return true, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(inserted, " ") != "kernel/drivers/acpi/button.ko" || strings.Join(got, " ") != "button" {
		t.Fatalf("inserted files %q, reported %q; want only button.ko (evdev is loaded)", inserted, got)
	}
}

func TestMainUsage(t *testing.T) {
	for _, args := range [][]string{{"--bogus"}, {"extra"}, {"--log-level", "loud"}, {"--device-timeout", "soon"}} {
		if code := Main(context.Background(), args); code != 2 {
			t.Errorf("Main(%q) = %d, want 2", args, code)
		}
	}
}
