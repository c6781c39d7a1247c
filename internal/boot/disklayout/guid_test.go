package disklayout

import (
	"fmt"
	"strings"
	"testing"
)

// guidToDisk returns the 16 on-disk bytes of a GUID in canonical text form:
// the first three fields little-endian, the last two as written.
func guidToDisk(s string) ([16]byte, error) {
	var out [16]byte
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 || len(s) != 36 {
		return out, fmt.Errorf("invalid GUID %q", s)
	}
	var raw [16]byte
	for i := range raw {
		var v byte
		if _, err := fmt.Sscanf(h[2*i:2*i+2], "%02x", &v); err != nil {
			return out, fmt.Errorf("invalid GUID %q", s)
		}
		raw[i] = v
	}
	out = raw
	out[0], out[1], out[2], out[3] = raw[3], raw[2], raw[1], raw[0]
	out[4], out[5] = raw[5], raw[4]
	out[6], out[7] = raw[7], raw[6]
	return out, nil
}

func TestGUIDToAndFromDisk(t *testing.T) {
	tests := []struct{ guid, disk string }{
		{TypeBIOSBoot, "Hah!IdontNeedEFI"},
		{TypeBoot, "hack the planet!"},
	}
	for _, tt := range tests {
		b, err := guidToDisk(tt.guid)
		if err != nil || string(b[:]) != tt.disk {
			t.Errorf("guidToDisk(%s) = %q, %v; want %q", tt.guid, b, err, tt.disk)
		}
		if got := guidFromDisk([]byte(tt.disk)); got != tt.guid {
			t.Errorf("guidFromDisk(%q) = %s, want %s", tt.disk, got, tt.guid)
		}
	}
	if _, err := guidToDisk("not-a-guid"); err == nil {
		t.Errorf("guidToDisk accepted garbage")
	}
}
