package powerbutton

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ButtonName is the name the kernel's ACPI button driver gives the power
// button's input devices (LNXPWRBN and PNP0C0C alike).
const ButtonName = "Power Button"

// KeyPower is KEY_POWER of linux/input-event-codes.h.
const KeyPower = 116

// Event is one struct input_event as evdev delivers it: 24 bytes on amd64
// and arm64 (a struct timeval of two 64-bit fields, then type, code and
// value).
type Event struct {
	Time  unix.Timeval
	Type  uint16
	Code  uint16
	Value int32
}

// EventSize returns the size of struct input_event on this architecture.
func EventSize() int { return binary.Size(Event{}) }

// ReadEvent reads one event from r, which evdev fills with whole events.
func ReadEvent(r io.Reader) (Event, error) {
	var ev Event
	if err := binary.Read(r, binary.NativeEndian, &ev); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return ev, fmt.Errorf("read input event: short record (want %d bytes): %w", EventSize(), err)
		}
		return ev, err
	}
	return ev, nil
}

// IsPowerPress reports whether ev is the power key going down. Releases
// (value 0) and autorepeats (value 2) are not presses.
func IsPowerPress(ev Event) bool {
	return ev.Type == unix.EV_KEY && ev.Code == KeyPower && ev.Value == 1
}

// Device is one power button's event device.
type Device struct {
	// Handler is the evdev handler's name in sysfs, e.g. event0.
	Handler string
	// Path is its device node, e.g. /dev/input/event0.
	Path string
	// Phys is the input device's physical path, e.g. LNXPWRBN/button/input0;
	// empty when sysfs has none.
	Phys string
}

// FindButtons returns the event devices under sysfs/class/input whose
// input device is named ButtonName, in the order of their sysfs names,
// with their nodes under dev. No such device is not an error.
func FindButtons(sysfs, dev string) ([]Device, error) {
	dirs, err := filepath.Glob(filepath.Join(sysfs, "class", "input", "event*"))
	if err != nil {
		return nil, fmt.Errorf("find power buttons: %w", err)
	}
	var out []Device
	for _, d := range dirs {
		name, err := os.ReadFile(filepath.Join(d, "device", "name"))
		if errors.Is(err, os.ErrNotExist) {
			continue // the device went away, or is not an input device
		}
		if err != nil {
			return nil, fmt.Errorf("find power buttons: %w", err)
		}
		if strings.TrimSpace(string(name)) != ButtonName {
			continue
		}
		handler := filepath.Base(d)
		phys, _ := os.ReadFile(filepath.Join(d, "device", "phys"))
		out = append(out, Device{
			Handler: handler,
			Path:    filepath.Join(dev, devName(d, handler)),
			Phys:    strings.TrimSpace(string(phys)),
		})
	}
	return out, nil
}

// devName is the node's name below /dev: DEVNAME from the handler's uevent
// file, or input/<handler>, where devtmpfs puts evdev's nodes.
func devName(dir, handler string) string {
	if b, err := os.ReadFile(filepath.Join(dir, "uevent")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "DEVNAME="); ok && v != "" && filepath.IsLocal(v) {
				return v
			}
		}
	}
	return filepath.Join("input", handler)
}
