package disks

import (
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string // substrings of the error; none: valid
	}{
		{"one disk by device", `{"disks":[{"device":"/dev/vdb","mount":"scratch"}]}`, nil},
		{"by serial, xfs, options", `{"disks":[{"serial":"S1","filesystem":"xfs","label":"data","mount":"data","mount-options":["noatime","discard","errors=remount-ro"]}]}`, nil},
		{"no disks", `{"disks":[]}`, []string{"disks: no disk to prepare"}},
		{"empty object", `{}`, []string{"no disk to prepare"}},
		{"not JSON", `disks = []`, []string{"user data: invalid character"}},
		{"unknown field", `{"disks":[{"device":"/dev/vdb","mount":"a","mountpoint":"/x"}]}`, []string{`unknown field "mountpoint"`}},
		{"two values", `{"disks":[{"device":"/dev/vdb","mount":"a"}]} {}`, []string{"more than one JSON value"}},
		{"neither device nor serial", `{"disks":[{"mount":"a"}]}`, []string{"disks[0].device: give the disk's device or its serial"}},
		{"both", `{"disks":[{"device":"/dev/vdb","serial":"x","mount":"a"}]}`, []string{"disks[0].serial: give either"}},
		{"device outside /dev", `{"disks":[{"device":"/tmp/x","mount":"a"}]}`, []string{`disks[0].device: "/tmp/x" is not a device path under /dev`}},
		{"device with ..", `{"disks":[{"device":"/dev/../etc/passwd","mount":"a"}]}`, []string{"not a device path"}},
		{"same device twice", `{"disks":[{"device":"/dev/vdb","mount":"a"},{"device":"/dev/vdb","mount":"b"}]}`, []string{"disks[1].device: /dev/vdb is also disks[0]"}},
		{"same serial twice", `{"disks":[{"serial":"s","mount":"a"},{"serial":"s","mount":"b"}]}`, []string{`disks[1].serial: "s" is also disks[0]`}},
		{"unsupported filesystem", `{"disks":[{"device":"/dev/vdb","filesystem":"btrfs","mount":"a"}]}`, []string{`disks[0].filesystem: "btrfs" is not supported (ext4 or xfs)`}},
		{"label too long for xfs", `{"disks":[{"device":"/dev/vdb","filesystem":"xfs","label":"thirteen-char","mount":"a"}]}`, []string{"longer than xfs allows (12"}},
		{"label with a space", `{"disks":[{"device":"/dev/vdb","label":"a b","mount":"a"}]}`, []string{`disks[0].label: "a b"`}},
		{"no mount", `{"disks":[{"device":"/dev/vdb"}]}`, []string{"disks[0].mount: missing"}},
		{"mount with a slash", `{"disks":[{"device":"/dev/vdb","mount":"a/b"}]}`, []string{`disks[0].mount: "a/b" is not one directory name`}},
		{"mount ..", `{"disks":[{"device":"/dev/vdb","mount":".."}]}`, []string{"not one directory name"}},
		{"same mount twice", `{"disks":[{"device":"/dev/vdb","mount":"a"},{"device":"/dev/vdc","mount":"a"}]}`, []string{`disks[1].mount: "a" is also disks[0]'s`}},
		{"bad option", `{"disks":[{"device":"/dev/vdb","mount":"a","mount-options":["noatime,exec"]}]}`, []string{`disks[0].mount-options[0]: "noatime,exec"`}},
		{"every error at once", `{"disks":[{"mount":"a/b"},{"device":"/dev/vdc","filesystem":"zfs","mount":"c"}]}`,
			[]string{"disks[0].device", "disks[0].mount", "disks[1].filesystem"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.in))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range c.Disks {
					if d.Filesystem == "" {
						t.Errorf("%s: no default filesystem", d.Name())
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestDefaultFilesystem(t *testing.T) {
	c, err := ParseConfig([]byte(`{"disks":[{"device":"/dev/vdb","mount":"a"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Disks[0].Filesystem != "ext4" {
		t.Errorf("default filesystem %q, want ext4", c.Disks[0].Filesystem)
	}
}

func TestMountOptions(t *testing.T) {
	for _, tc := range []struct {
		in    []string
		flags uintptr
		data  string
	}{
		{nil, 0, ""},
		{[]string{"defaults", "rw"}, 0, ""},
		{[]string{"noatime", "nodev", "discard"}, flagOptions["noatime"] | flagOptions["nodev"], "discard"},
		{[]string{"ro", "errors=remount-ro", "commit=30"}, flagOptions["ro"], "errors=remount-ro,commit=30"},
	} {
		flags, data := mountOptions(tc.in)
		if flags != tc.flags || data != tc.data {
			t.Errorf("mountOptions(%q) = %#x %q, want %#x %q", tc.in, flags, data, tc.flags, tc.data)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{`/mnt/a\040b`: "/mnt/a b", "/plain": "/plain", `/tab\011x`: "/tab\tx", `/short\04`: `/short\04`} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
