package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/devtools/apibridge"
)

// The test binary doubles as a stand-in for qemu-system-x86_64 when
// GANTRY_FAKE_QEMU=1: it parses the arguments Start passes, speaks QMP on
// the first -qmp socket (and sends events on a second), prints a console
// that names the -kernel file's content, and implements the hostfwd by
// forwarding 127.0.0.1:<port> to the Unix socket in GANTRY_FAKE_API (the
// guest's api-bridge and apiserver in one).
//
// Knobs (environment):
//
//	GANTRY_FAKE_BOOT_DELAY      time before the "guest" answers on the port
//	GANTRY_FAKE_IGNORE_POWERDOWN  the guest ignores the ACPI power button
//	GANTRY_FAKE_PANIC           the guest panics and QEMU exits with 0 after printing
//	GANTRY_FAKE_PORT_BUSY_ONCE  a file: when absent, create it and fail the hostfwd
//	GANTRY_FAKE_REBOOT_FILE     a file: once it appears, remove it, reboot the guest (QMP
//	                            SHUTDOWN event, reason guest-reset) and exit as -no-reboot does
func TestMain(m *testing.M) {
	if os.Getenv("GANTRY_FAKE_QEMU") == "1" {
		os.Exit(fakeQEMU(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeQEMU(args []string) int {
	var qmpPath, eventsPath, kernel, cmdline, userData string
	port := 0
	for i := 0; i+1 < len(args); i++ {
		v := args[i+1]
		switch args[i] {
		case "-qmp":
			v = strings.TrimPrefix(v, "unix:")
			v = strings.ReplaceAll(strings.TrimSuffix(v, ",server=on,wait=off"), ",,", ",")
			if qmpPath == "" {
				qmpPath = v
			} else {
				eventsPath = v
			}
		case "-kernel":
			kernel = v
		case "-append":
			cmdline = v
		case "-fw_cfg":
			_, f, _ := strings.Cut(v, ",file=")
			userData = strings.ReplaceAll(f, ",,", ",")
		case "-netdev":
			_, fwd, _ := strings.Cut(v, "hostfwd=tcp:127.0.0.1:")
			fmt.Sscanf(fwd, "%d-", &port)
		}
	}
	if busy := os.Getenv("GANTRY_FAKE_PORT_BUSY_ONCE"); busy != "" {
		if _, err := os.Stat(busy); err != nil {
			os.WriteFile(busy, nil, 0o644)
			fmt.Fprintf(os.Stderr, "qemu-system-x86_64: -netdev user,id=n0,hostfwd=tcp:127.0.0.1:%d-:8081: Could not set up host forwarding rule 'tcp:127.0.0.1:%d-:8081'\n", port, port)
			return 1
		}
	}
	k, _ := os.ReadFile(kernel)
	fmt.Printf("[    0.000000] Linux version fake (%s)\n[    0.000000] Command line: %s\n", k, cmdline)
	if userData != "" {
		b, _ := os.ReadFile(userData)
		fmt.Printf("fw_cfg opt/gantry/user-data: %s\n", strings.TrimSpace(string(b)))
	}
	if os.Getenv("GANTRY_FAKE_PANIC") != "" {
		fmt.Println("Kernel panic - not syncing: VFS: Unable to mount root fs")
		return 0
	}

	exit := make(chan int, 1)
	qln, err := net.Listen("unix", qmpPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		for {
			c, err := qln.Accept()
			if err != nil {
				return
			}
			fakeQMPSession(c, exit)
		}
	}()

	if eventsPath != "" {
		if err := fakeEvents(eventsPath, exit); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}

	fwd, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	delay, _ := time.ParseDuration(os.Getenv("GANTRY_FAKE_BOOT_DELAY"))
	up := time.Now().Add(delay)
	guest := apibridge.UnixDialer(os.Getenv("GANTRY_FAKE_API"))
	go (&apibridge.Forwarder{Dial: func(ctx context.Context) (net.Conn, error) {
		if time.Now().Before(up) { // nothing listens in the guest yet: slirp closes
			return nil, fmt.Errorf("guest not up")
		}
		return guest(ctx)
	}}).Serve(context.Background(), fwd)
	fmt.Println("Welcome to Gantry (fake)")
	code := <-exit
	os.Remove(qmpPath)
	return code
}

// fakeEvents serves the events monitor: one client, which gets SHUTDOWN
// (guest-reset) when GANTRY_FAKE_REBOOT_FILE appears; QEMU then exits.
func fakeEvents(path string, exit chan<- int) error {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	clients := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		json.NewEncoder(c).Encode(map[string]any{"QMP": map[string]any{"version": map[string]any{}, "capabilities": []string{}}})
		bufio.NewReader(c).ReadString('\n') // qmp_capabilities
		json.NewEncoder(c).Encode(map[string]any{"return": map[string]any{}})
		clients <- c
	}()
	trigger := os.Getenv("GANTRY_FAKE_REBOOT_FILE")
	if trigger == "" {
		return nil
	}
	go func() {
		for os.Remove(trigger) != nil {
			time.Sleep(50 * time.Millisecond)
		}
		fmt.Println("reboot: Restarting system")
		select {
		case c := <-clients:
			json.NewEncoder(c).Encode(map[string]any{"event": "SHUTDOWN", "data": map[string]any{"guest": true, "reason": "guest-reset"}})
			c.Close()
		case <-time.After(time.Second):
		}
		exit <- 0
	}()
	return nil
}

func fakeQMPSession(c net.Conn, exit chan<- int) {
	defer c.Close()
	enc := json.NewEncoder(c)
	enc.Encode(map[string]any{"QMP": map[string]any{"version": map[string]any{}, "capabilities": []string{}}})
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		var req struct {
			Execute string `json:"execute"`
		}
		json.Unmarshal(sc.Bytes(), &req)
		// An event before every answer, as QEMU may interleave them.
		enc.Encode(map[string]any{"event": "RTC_CHANGE", "data": map[string]any{"offset": 0}})
		switch req.Execute {
		case "qmp_capabilities":
			enc.Encode(map[string]any{"return": map[string]any{}})
		case "query-status":
			enc.Encode(map[string]any{"return": map[string]any{"status": "running", "running": true}})
		case "system_powerdown":
			enc.Encode(map[string]any{"return": map[string]any{}})
			if os.Getenv("GANTRY_FAKE_IGNORE_POWERDOWN") == "" {
				fmt.Println("reboot: Power down")
				exit <- 0
			}
		case "quit":
			enc.Encode(map[string]any{"return": map[string]any{}})
			exit <- 0
		default:
			enc.Encode(map[string]any{"error": map[string]any{"class": "CommandNotFound", "desc": "The command " + req.Execute + " has not been found"}})
		}
	}
}

// fakeNode prepares the environment for a fake QEMU and returns Options
// that boot it.
func fakeNode(t *testing.T, env map[string]string) Options {
	t.Helper()
	dir := shortDir(t)
	api := dir + "/guest-api.sock"
	ln, err := net.Listen("unix", api)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/os" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, `{"pretty_name":"Gantry (fake)","variant_id":"metal-dev"}`)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	t.Setenv("GANTRY_FAKE_QEMU", "1")
	t.Setenv("GANTRY_FAKE_API", api)
	for k, v := range env {
		t.Setenv(k, v)
	}
	ud := dir + "/user,data.toml"
	os.WriteFile(ud, []byte("[settings]\nmotd = \"fake\"\n"), 0o644)
	return Options{
		BuildDir: buildDir(t, "gantry-metal-dev-x86_64-0.1.0-abc.img"),
		Boot:     BootFiles,
		RunDir:   dir + "/run",
		UserData: ud,
		QEMU:     os.Args[0],
		DiskMode: diskCopy,
		Accel:    AccelTCG,
	}
}

func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "gq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestNodeLifecycle(t *testing.T) {
	o := fakeNode(t, map[string]string{"GANTRY_FAKE_BOOT_DELAY": "1500ms"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	n, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if n.DiskReused() {
		t.Error("first start reused a disk")
	}
	if _, err := Start(ctx, o); err == nil || !strings.Contains(err.Error(), "another node") {
		t.Errorf("a second node in the same run directory: %v", err)
	}
	start := time.Now()
	if err := n.WaitForAPI(ctx); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < time.Second {
		t.Errorf("WaitForAPI returned before the guest was up")
	}
	con := n.Console()
	for _, want := range []string{
		"Command line: ro gantry.roothash=00ff console=ttyS0 gantry.api-bridge",
		`fw_cfg opt/gantry/user-data: [settings]`,
		"Welcome to Gantry (fake)",
	} {
		if !strings.Contains(con, want) {
			t.Errorf("console lacks %q:\n%s", want, con)
		}
	}

	stopStart := time.Now()
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(stopStart); d > 10*time.Second {
		t.Errorf("graceful stop took %v", d)
	}
	if err := n.Wait(); err != nil {
		t.Errorf("Wait: %v", err)
	}
	if !strings.Contains(n.Console(), "reboot: Power down") {
		t.Error("the guest was not powered off")
	}
	if _, err := os.Stat(n.SocketPath()); !os.IsNotExist(err) {
		t.Errorf("host socket left behind: %v", err)
	}

	// The run directory is free again, and the disk is kept.
	n2, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Stop(ctx)
	if !n2.DiskReused() {
		t.Error("second start did not keep the disk")
	}
}

func TestStopQuitsWhenGuestIgnoresPowerdown(t *testing.T) {
	o := fakeNode(t, map[string]string{"GANTRY_FAKE_IGNORE_POWERDOWN": "1"})
	o.StopTimeout = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.WaitForAPI(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("stop took %v", d)
	}
	if strings.Contains(n.Console(), "Power down") {
		t.Error("the guest powered off although it ignores the button")
	}
	if err := n.Wait(); err != nil {
		t.Errorf("Wait after quit: %v", err)
	}
}

func TestWaitForAPIFailsWhenVMExits(t *testing.T) {
	o := fakeNode(t, map[string]string{"GANTRY_FAKE_PANIC": "1"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := Start(ctx, o)
	if err != nil {
		// QEMU may exit before its monitor answers: Start says so.
		if !strings.Contains(err.Error(), "qemu exited at start") {
			t.Fatal(err)
		}
		return
	}
	defer n.Stop(ctx)
	err = n.WaitForAPI(ctx)
	if err == nil || !strings.Contains(err.Error(), "Kernel panic") {
		t.Fatalf("WaitForAPI: %v; want the console's panic", err)
	}
}

func TestStartRetriesTakenPort(t *testing.T) {
	o := fakeNode(t, nil)
	t.Setenv("GANTRY_FAKE_PORT_BUSY_ONCE", shortDir(t)+"/busy")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(ctx)
	if err := n.WaitForAPI(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestQMPErrors(t *testing.T) {
	o := fakeNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(ctx)
	tests := []struct {
		command, wantErr, wantReturn string
	}{
		{"query-status", "", `"running":true`},
		{"no-such-command", "CommandNotFound", ""},
	}
	for _, tc := range tests {
		ret, err := qmpCommand(ctx, n.qmpPath, tc.command)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want %q", tc.command, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !strings.Contains(string(ret), tc.wantReturn) {
			t.Errorf("%s: %s, %v", tc.command, ret, err)
		}
	}
	if _, err := qmpCommand(ctx, n.qmpPath+".absent", "query-status"); err == nil {
		t.Error("QMP on a missing socket succeeded")
	}
}
