package imagebuild

import (
	"slices"
	"strings"
	"testing"
)

func TestModName(t *testing.T) {
	for in, want := range map[string]string{
		"dm-verity": "dm_verity", "kernel/drivers/md/dm-verity.ko": "dm_verity", "virtio-rng": "virtio_rng",
		"erofs.ko.xz": "erofs", "overlay": "overlay",
	} {
		if got := modName(in); got != want {
			t.Errorf("modName(%q) = %q, want %q", in, got, want)
		}
	}
}

// fakeKernel puts a kernel with a few modules into a staging tree.
func fakeKernel(t *testing.T, s *stage) {
	t.Helper()
	md := "usr/lib/modules/6.1.0-test"
	put(t, s, map[string]string{
		"boot/vmlinuz-6.1.0-test":                       "kernel",
		"boot/config-6.1.0-test":                        "config",
		md + "/modules.builtin":                         "kernel/fs/ext4/ext4.ko\n",
		md + "/kernel/drivers/md/dm-mod.ko":             fakeKO("dm_mod"),
		md + "/kernel/drivers/md/dm-bufio.ko":           fakeKO("dm_bufio", "dm-mod"),
		md + "/kernel/drivers/md/dm-verity.ko":          fakeKO("dm_verity", "dm-mod", "dm-bufio", "reed_solomon"),
		md + "/kernel/lib/reed_solomon/reed_solomon.ko": fakeKO("reed_solomon"),
		md + "/kernel/net/netfilter/nf_tables.ko":       fakeKO("nf_tables", "nfnetlink"),
		md + "/kernel/net/netfilter/nfnetlink.ko":       fakeKO("nfnetlink"),
		md + "/kernel/fs/erofs/erofs.ko":                fakeKO("erofs", "libcrc32c"),
		md + "/kernel/lib/libcrc32c.ko":                 fakeKO("libcrc32c"),
		md + "/kernel/sound/core/snd.ko":                fakeKO("snd"),
	})
}

func TestSelectModules(t *testing.T) {
	tests := []struct {
		name            string
		keep, initramfs []string
		want            []string // kept module files below kernel/
		err             string
	}{
		{"names and deps", []string{"dm-verity", "ext4"}, nil,
			[]string{"drivers/md/dm-bufio.ko", "drivers/md/dm-mod.ko", "drivers/md/dm-verity.ko", "lib/reed_solomon/reed_solomon.ko"}, ""},
		{"folder and initramfs", []string{"net/netfilter"}, []string{"erofs"},
			[]string{"fs/erofs/erofs.ko", "lib/libcrc32c.ko", "net/netfilter/nf_tables.ko", "net/netfilter/nfnetlink.ko"}, ""},
		{"all", []string{"*"}, nil, []string{"drivers/md/dm-bufio.ko", "drivers/md/dm-mod.ko", "drivers/md/dm-verity.ko",
			"fs/erofs/erofs.ko", "lib/libcrc32c.ko", "lib/reed_solomon/reed_solomon.ko", "net/netfilter/nf_tables.ko",
			"net/netfilter/nfnetlink.ko", "sound/core/snd.ko"}, ""},
		{"unknown", []string{"nosuch"}, nil, nil, "nosuch (kernel.modules) is not a module"},
		{"empty folder", []string{"fs/nosuch"}, nil, nil, "no module under kernel/fs/nosuch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStage(t)
			fakeKernel(t, s)
			k, err := takeKernel(s, t.TempDir()+"/vmlinuz")
			if err != nil {
				t.Fatal(err)
			}
			if k.Release != "6.1.0-test" || s.exists("boot/config-6.1.0-test") || !s.exists("boot") {
				t.Fatalf("takeKernel: %+v; /boot not emptied", k)
			}
			err = selectModules(s, k, tc.keep, tc.initramfs)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			mods, err := readModules(s, k.ModulesDir)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range mods {
				got = append(got, strings.TrimPrefix(m.rel, "kernel/"))
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("kept %v, want %v", got, tc.want)
			}
			if k.Kept != len(tc.want) || k.Total != 9 {
				t.Errorf("kept %d of %d", k.Kept, k.Total)
			}
			if !s.exists(k.ModulesDir + "/modules.builtin") {
				t.Error("modules.builtin removed")
			}
			if len(tc.want) < 9 && s.exists(k.ModulesDir+"/kernel/sound") {
				t.Error("empty folders left behind")
			}
		})
	}
}
