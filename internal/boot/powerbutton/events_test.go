package powerbutton

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// rawEvent lays out one struct input_event as a 64-bit little-endian
// kernel writes it: tv_sec, tv_usec (8 bytes each), type, code (2 bytes
// each), value (4 bytes).
func rawEvent(sec, usec int64, typ, code uint16, value int32) []byte {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint64(b[0:], uint64(sec))
	binary.LittleEndian.PutUint64(b[8:], uint64(usec))
	binary.LittleEndian.PutUint16(b[16:], typ)
	binary.LittleEndian.PutUint16(b[18:], code)
	binary.LittleEndian.PutUint32(b[20:], uint32(value))
	return b
}

func need64LE(t *testing.T) {
	t.Helper()
	switch runtime.GOARCH {
	case "amd64", "arm64", "riscv64", "loong64", "ppc64le":
	default:
		t.Skipf("the raw layout here is the 64-bit little-endian one, not %s's", runtime.GOARCH)
	}
}

func TestReadEvent(t *testing.T) {
	need64LE(t)
	if got := EventSize(); got != 24 {
		t.Fatalf("EventSize() = %d, want 24", got)
	}
	for _, tc := range []struct {
		name    string
		in      []byte
		want    []Event // read in order, then wantErr
		wantErr string
	}{
		{
			name: "press, sync, release",
			in: bytes.Join([][]byte{
				rawEvent(1700000000, 123456, 1, 116, 1),
				rawEvent(1700000000, 123456, 0, 0, 0),
				rawEvent(1700000000, 223456, 1, 116, 0),
			}, nil),
			want: []Event{
				{Type: 1, Code: 116, Value: 1},
				{Type: 0, Code: 0, Value: 0},
				{Type: 1, Code: 116, Value: 0},
			},
			wantErr: "EOF",
		},
		{
			name:    "negative value",
			in:      rawEvent(5, 6, 3, 0, -42),
			want:    []Event{{Type: 3, Code: 0, Value: -42}},
			wantErr: "EOF",
		},
		{name: "empty", wantErr: "EOF"},
		{name: "short record", in: rawEvent(1, 2, 1, 116, 1)[:20], wantErr: "short record (want 24 bytes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := bytes.NewReader(tc.in)
			for i, w := range tc.want {
				ev, err := ReadEvent(r)
				if err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
				if ev.Type != w.Type || ev.Code != w.Code || ev.Value != w.Value {
					t.Errorf("event %d = type %d code %d value %d, want %d %d %d", i, ev.Type, ev.Code, ev.Value, w.Type, w.Code, w.Value)
				}
				if i == 0 && tc.name == "press, sync, release" && (ev.Time.Sec != 1700000000 || ev.Time.Usec != 123456) {
					t.Errorf("time = %d.%06d", ev.Time.Sec, ev.Time.Usec)
				}
			}
			_, err := ReadEvent(r)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("after the events: error %v, want %q", err, tc.wantErr)
			}
			if tc.wantErr == "EOF" && !errors.Is(err, io.EOF) {
				t.Errorf("error %v is not io.EOF", err)
			}
		})
	}
}

func TestIsPowerPress(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   Event
		want bool
	}{
		{"press", Event{Type: 1, Code: 116, Value: 1}, true},
		{"release", Event{Type: 1, Code: 116, Value: 0}, false},
		{"autorepeat", Event{Type: 1, Code: 116, Value: 2}, false},
		{"other key", Event{Type: 1, Code: 142, Value: 1}, false}, // KEY_SLEEP
		{"sync", Event{Type: 0, Code: 0, Value: 0}, false},
		{"not a key event", Event{Type: 4, Code: 116, Value: 1}, false}, // EV_MSC
	} {
		if got := IsPowerPress(tc.ev); got != tc.want {
			t.Errorf("%s: IsPowerPress = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// inputDevice is one input device of a fake sysfs tree.
type inputDevice struct {
	input, event, name, phys, devname string
}

// fakeSysfs lays out /sys/devices/.../inputN/{name,phys,eventM/uevent}
// and /sys/class/input/eventM -> that eventM, as the kernel does.
func fakeSysfs(t *testing.T, root string, devs ...inputDevice) {
	t.Helper()
	for _, d := range devs {
		in := filepath.Join(root, "devices", "LNXSYSTM:00", d.input)
		ev := filepath.Join(in, d.event)
		must(t, os.MkdirAll(ev, 0o755))
		must(t, os.Symlink("..", filepath.Join(ev, "device")))
		if d.name != "" {
			must(t, os.WriteFile(filepath.Join(in, "name"), []byte(d.name+"\n"), 0o444))
		}
		if d.phys != "" {
			must(t, os.WriteFile(filepath.Join(in, "phys"), []byte(d.phys+"\n"), 0o444))
		}
		uevent := "MAJOR=13\nMINOR=64\n"
		if d.devname != "" {
			uevent += "DEVNAME=" + d.devname + "\n"
		}
		must(t, os.WriteFile(filepath.Join(ev, "uevent"), []byte(uevent), 0o444))
		class := filepath.Join(root, "class", "input")
		must(t, os.MkdirAll(class, 0o755))
		rel, err := filepath.Rel(class, ev)
		must(t, err)
		must(t, os.Symlink(rel, filepath.Join(class, d.event)))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestFindButtons(t *testing.T) {
	for _, tc := range []struct {
		name string
		devs []inputDevice
		want []Device
	}{
		{name: "no input devices"},
		{
			name: "QEMU q35: the fixed-feature button among others",
			devs: []inputDevice{
				{input: "input0", event: "event0", name: "Power Button", phys: "LNXPWRBN/button/input0", devname: "input/event0"},
				{input: "input1", event: "event1", name: "AT Translated Set 2 keyboard", phys: "isa0060/serio0/input0", devname: "input/event1"},
				{input: "input2", event: "event2", name: "Sleep Button", phys: "LNXSLPBN/button/input0", devname: "input/event2"},
			},
			want: []Device{{Handler: "event0", Path: "/dev/input/event0", Phys: "LNXPWRBN/button/input0"}},
		},
		{
			name: "LNXPWRBN and PNP0C0C both",
			devs: []inputDevice{
				{input: "input3", event: "event3", name: "Power Button", phys: "PNP0C0C/button/input0", devname: "input/event3"},
				{input: "input4", event: "event4", name: "Power Button", phys: "LNXPWRBN/button/input0", devname: "input/event4"},
			},
			want: []Device{
				{Handler: "event3", Path: "/dev/input/event3", Phys: "PNP0C0C/button/input0"},
				{Handler: "event4", Path: "/dev/input/event4", Phys: "LNXPWRBN/button/input0"},
			},
		},
		{
			name: "DEVNAME missing or leaving /dev: input/eventN",
			devs: []inputDevice{
				{input: "input0", event: "event0", name: "Power Button"},
				{input: "input5", event: "event5", name: "Power Button", devname: "../etc/passwd"},
			},
			want: []Device{
				{Handler: "event0", Path: "/dev/input/event0"},
				{Handler: "event5", Path: "/dev/input/event5"},
			},
		},
		{
			name: "DEVNAME elsewhere in /dev",
			devs: []inputDevice{{input: "input0", event: "event0", name: "Power Button", devname: "input/by-acpi/event0"}},
			want: []Device{{Handler: "event0", Path: "/dev/input/by-acpi/event0"}},
		},
		{
			name: "no name file, or a similar name",
			devs: []inputDevice{
				{input: "input0", event: "event0"},
				{input: "input1", event: "event1", name: "Power Button Extra"},
				{input: "input2", event: "event2", name: "power button"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := t.TempDir()
			fakeSysfs(t, sys, tc.devs...)
			got, err := FindButtons(sys, "/dev")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("FindButtons = %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
