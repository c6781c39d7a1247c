package localfs

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// fakeMounter records the mounts asked of it.
type fakeMounter struct {
	have  map[string]bool
	fail  string
	calls []string
}

func (f *fakeMounter) mounted() (map[string]bool, error) { return f.have, nil }

func (f *fakeMounter) mount(m Mount) error {
	f.calls = append(f.calls, m.Target)
	if m.Target == f.fail {
		return errors.New("EINVAL")
	}
	return nil
}

func TestMountAll(t *testing.T) {
	mounts := NodeMounts("/run/gantry/partitions")
	tests := []struct {
		name       string
		have       map[string]bool
		fail       string
		want, made []string
		err        string
	}{
		{"all", nil, "", []string{"/local", "/var", "/opt", "/mnt", "/var/lib/gantry"}, []string{"/local", "/var", "/opt", "/mnt", "/var/lib/gantry"}, ""},
		{"some mounted already", map[string]bool{"/local": true, "/mnt": true}, "", []string{"/var", "/opt", "/var/lib/gantry"}, []string{"/var", "/opt", "/var/lib/gantry"}, ""},
		{"stops at the first error", nil, "/opt", []string{"/local", "/var", "/opt"}, []string{"/local", "/var"}, "mount /local/opt on /opt: EINVAL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeMounter{have: tc.have, fail: tc.fail}
			made, err := mountAll(context.Background(), f, mounts)
			if !slices.Equal(f.calls, tc.want) || !slices.Equal(made, tc.made) {
				t.Errorf("mounted %v (made %v), want %v (%v)", f.calls, made, tc.want, tc.made)
			}
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("error %v, want %q", err, tc.err)
			}
		})
	}
	if m := mounts[0]; m.Source != "/run/gantry/partitions/GANTRY-DATA" || m.Bind {
		t.Errorf("DATA mount %+v", m)
	}
	if m := mounts[4]; m.Source != "/run/gantry/partitions/GANTRY-PRIVATE" || !m.Mkdir {
		t.Errorf("PRIVATE mount %+v", m)
	}
}

func TestParseMountinfo(t *testing.T) {
	info := `22 1 254:0 / / ro,relatime shared:1 - erofs /dev/dm-0 ro
23 22 0:21 / /run rw,nosuid,nodev shared:2 - tmpfs tmpfs rw
40 22 254:13 / /local rw,nosuid,nodev,noatime shared:20 - ext4 /dev/vda13 rw
41 22 254:13 /var /var rw shared:20 - ext4 /dev/vda13 rw
42 22 0:50 / /mnt/with\040space rw - tmpfs tmpfs rw
`
	got, err := parseMountinfo(strings.NewReader(info))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/", "/run", "/local", "/var", "/mnt/with space"} {
		if !got[p] {
			t.Errorf("%s not found in %v", p, got)
		}
	}
	if len(got) != 5 {
		t.Errorf("mount points %v", got)
	}
}
