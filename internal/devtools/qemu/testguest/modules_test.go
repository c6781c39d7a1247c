package testguest

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// writeModule writes a minimal relocatable ELF64 file whose .modinfo
// section says depends=<deps>, as a kernel module's does.
func writeModule(t *testing.T, path string, deps ...string) {
	t.Helper()
	modinfo := []byte("license=GPL\x00depends=" + strings.Join(deps, ",") + "\x00name=" +
		ModuleName(filepath.Base(path)) + "\x00")
	shstrtab := []byte("\x00.modinfo\x00.shstrtab\x00")
	const hdr = 64
	modOff := uint64(hdr)
	strOff := modOff + uint64(len(modinfo))
	shOff := (strOff + uint64(len(shstrtab)) + 7) &^ 7

	var b bytes.Buffer
	h := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Shoff: shOff, Ehsize: hdr, Shentsize: 64, Shnum: 3, Shstrndx: 2,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.Write(&b, binary.LittleEndian, h)
	b.Write(modinfo)
	b.Write(shstrtab)
	b.Write(make([]byte, shOff-uint64(b.Len())))
	for _, s := range []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Off: modOff, Size: uint64(len(modinfo)), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(shstrtab)), Addralign: 1},
	} {
		binary.Write(&b, binary.LittleEndian, s)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestModuleDepends(t *testing.T) {
	p := filepath.Join(t.TempDir(), "virtio_net.ko")
	writeModule(t, p, "net_failover", "virtio", "virtio_ring")
	got, err := moduleDepends(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"net_failover", "virtio", "virtio_ring"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("depends %v, want %v", got, want)
	}
	notELF := filepath.Join(t.TempDir(), "x.ko")
	os.WriteFile(notELF, []byte("not an ELF file"), 0o644)
	if _, err := moduleDepends(notELF); err == nil {
		t.Fatal("read dependencies from a file that is not ELF")
	}
}

func TestModuleLoaderOrder(t *testing.T) {
	// The shape of Debian's cloud kernel: the virtio PCI transport and NIC.
	tree := map[string][]string{
		"kernel/drivers/virtio/virtio.ko":                {},
		"kernel/drivers/virtio/virtio_ring.ko":           {},
		"kernel/drivers/virtio/virtio_pci_modern_dev.ko": {},
		"kernel/drivers/virtio/virtio_pci_legacy_dev.ko": {},
		"kernel/drivers/virtio/virtio_pci.ko":            {"virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio", "virtio_ring"},
		"kernel/net/core/failover.ko":                    {},
		"kernel/drivers/net/net_failover.ko":             {"failover"},
		"kernel/drivers/net/virtio_net.ko":               {"net_failover", "virtio", "virtio_ring"},
		"kernel/drivers/firmware/qemu_fw_cfg.ko":         {},
		"kernel/cyc/cyc-a.ko":                            {"cyc_b"},
		"kernel/cyc/cyc_b.ko":                            {"cyc_a"},
		"kernel/x/needs-missing.ko":                      {"nowhere"},
	}
	tests := []struct {
		name    string
		want    []string
		loaded  []string // in /sys/module already
		exist   []string // Insert answers EEXIST (a race with another loader)
		fail    string   // Insert fails for this one
		wantIns []string
		wantErr string
	}{
		{
			name: "NIC with its dependencies, each once",
			want: []string{"virtio_pci", "virtio_net"},
			wantIns: []string{"virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio", "virtio_ring",
				"virtio_pci", "failover", "net_failover", "virtio_net"},
		},
		{
			name:    "loaded modules are skipped (the initramfs loaded the disk's)",
			want:    []string{"virtio_pci", "virtio_net"},
			loaded:  []string{"virtio", "virtio_ring", "virtio_pci"},
			wantIns: []string{"failover", "net_failover", "virtio_net"},
		},
		{
			name:    "EEXIST is success",
			want:    []string{"net_failover"},
			exist:   []string{"failover"},
			wantIns: []string{"net_failover"},
		},
		{
			name:    "dashes and underscores are one name",
			want:    []string{"qemu-fw-cfg", "cyc_a"},
			loaded:  []string{"cyc_a"},
			wantIns: []string{"qemu_fw_cfg"},
		},
		{name: "built-in module: no file but in /sys/module", want: []string{"ext4"}, loaded: []string{"ext4"}},
		{name: "unknown module", want: []string{"e1000"}, wantErr: "module e1000: not found"},
		{name: "missing dependency", want: []string{"needs-missing"}, wantErr: "module nowhere: not found"},
		{name: "cycle", want: []string{"cyc_a"}, wantErr: "dependency cycle cyc_a -> cyc_b -> cyc_a"},
		{
			name: "insert failure stops and names the module", want: []string{"virtio_net"}, fail: "net_failover",
			wantIns: []string{"failover"}, wantErr: "load module net_failover",
		},
	}
	dir := t.TempDir()
	for p, deps := range tree {
		writeModule(t, filepath.Join(dir, p), deps...)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sysfs := t.TempDir()
			for _, m := range tc.loaded {
				os.MkdirAll(filepath.Join(sysfs, "module", m), 0o755)
			}
			var inserted []string
			insert := func(path string) error {
				name := ModuleName(filepath.Base(path))
				if name == tc.fail {
					return syscall.ENOEXEC
				}
				for _, e := range tc.exist {
					if e == name {
						return fmt.Errorf("finit_module: %w", syscall.EEXIST)
					}
				}
				inserted = append(inserted, name)
				return nil
			}
			got, err := ModuleLoader{Dir: dir, Sysfs: sysfs, Insert: insert}.Load(context.Background(), tc.want...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(inserted, tc.wantIns) {
				t.Errorf("inserted %v, want %v", inserted, tc.wantIns)
			}
			if len(got) != len(inserted) {
				t.Errorf("Load reported %v, inserted %v", got, inserted)
			}
		})
	}
}

func TestModuleLoaderNoDir(t *testing.T) {
	if _, err := (ModuleLoader{}).Load(context.Background(), "virtio_net"); err == nil {
		t.Fatal("loaded without a module directory")
	}
	if _, err := (ModuleLoader{Dir: filepath.Join(t.TempDir(), "absent")}).Load(context.Background(), "x"); err == nil {
		t.Fatal("loaded from a missing directory")
	}
}
