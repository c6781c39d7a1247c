package disklayout

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// row is one line of a layout table: role, name, start and size in MiB.
type row struct {
	role, name  string
	start, size int64
}

func rows(ps Partitions) []row {
	var out []row
	for _, p := range ps {
		out = append(out, row{p.Role(), p.Name, p.StartMiB(), p.SizeMiB()})
	}
	return out
}

func TestPlanTables(t *testing.T) {
	tests := []struct {
		name       string
		opts       Options
		osMiB      int64
		os         []row
		dataMiB    int64 // 0: no data disk
		dataSizeMB int64
	}{
		{
			// The 2 GiB table of the spec (§1.2), with Gantry names.
			name:  "2 GiB split (default)",
			opts:  Options{},
			osMiB: 2048,
			os: []row{
				{"BIOS", "BIOS-BOOT", 1, 4},
				{"EFI-A", "EFI-SYSTEM", 5, 24},
				{"BOOT-A", "GANTRY-BOOT-A", 29, 40},
				{"ROOT-A", "GANTRY-ROOT-A", 69, 920},
				{"HASH-A", "GANTRY-HASH-A", 989, 10},
				{"RESERVED-A", "GANTRY-RESERVED-A", 999, 6},
				{"EFI-B", "EFI-BACKUP", 1005, 24},
				{"BOOT-B", "GANTRY-BOOT-B", 1029, 40},
				{"ROOT-B", "GANTRY-ROOT-B", 1069, 920},
				{"HASH-B", "GANTRY-HASH-B", 1989, 10},
				{"RESERVED-B", "GANTRY-RESERVED-B", 1999, 6},
				{"PRIVATE", "GANTRY-PRIVATE", 2005, 41},
				{"DATA-A", "", 2046, 1},
			},
			dataMiB: 1024, dataSizeMB: 1022,
		},
		{
			// 4 GiB: EFI 48, BOOT 80, ROOT 1840, HASH 20, RESERVED 12, PRIVATE 89.
			name:  "4 GiB split, 20 GiB data",
			opts:  Options{OSImageGiB: 4, DataImageGiB: 20, PartitionPlan: Split},
			osMiB: 4096,
			os: []row{
				{"BIOS", "BIOS-BOOT", 1, 4},
				{"EFI-A", "EFI-SYSTEM", 5, 48},
				{"BOOT-A", "GANTRY-BOOT-A", 53, 80},
				{"ROOT-A", "GANTRY-ROOT-A", 133, 1840},
				{"HASH-A", "GANTRY-HASH-A", 1973, 20},
				{"RESERVED-A", "GANTRY-RESERVED-A", 1993, 12},
				{"EFI-B", "EFI-BACKUP", 2005, 48},
				{"BOOT-B", "GANTRY-BOOT-B", 2053, 80},
				{"ROOT-B", "GANTRY-ROOT-B", 2133, 1840},
				{"HASH-B", "GANTRY-HASH-B", 3973, 20},
				{"RESERVED-B", "GANTRY-RESERVED-B", 3993, 12},
				{"PRIVATE", "GANTRY-PRIVATE", 4005, 89},
				{"DATA-A", "", 4094, 1},
			},
			dataMiB: 20 * 1024, dataSizeMB: 20*1024 - 2,
		},
		{
			name:  "2 GiB unified, 1 GiB data",
			opts:  Options{PartitionPlan: Unified},
			osMiB: 3072,
			os: []row{
				{"BIOS", "BIOS-BOOT", 1, 4},
				{"EFI-A", "EFI-SYSTEM", 5, 24},
				{"BOOT-A", "GANTRY-BOOT-A", 29, 40},
				{"ROOT-A", "GANTRY-ROOT-A", 69, 920},
				{"HASH-A", "GANTRY-HASH-A", 989, 10},
				{"RESERVED-A", "GANTRY-RESERVED-A", 999, 6},
				{"EFI-B", "EFI-BACKUP", 1005, 24},
				{"BOOT-B", "GANTRY-BOOT-B", 1029, 40},
				{"ROOT-B", "GANTRY-ROOT-B", 1069, 920},
				{"HASH-B", "GANTRY-HASH-B", 1989, 10},
				{"RESERVED-B", "GANTRY-RESERVED-B", 1999, 6},
				{"PRIVATE", "GANTRY-PRIVATE", 2005, 41},
				{"DATA-A", "", 2046, 1024},
			},
		},
		{
			name:  "2 GiB single bank",
			opts:  Options{SingleBank: true},
			osMiB: 2048,
			os: []row{
				{"BIOS", "BIOS-BOOT", 1, 4},
				{"EFI-A", "EFI-SYSTEM", 5, 48},
				{"BOOT-A", "GANTRY-BOOT-A", 53, 80},
				{"ROOT-A", "GANTRY-ROOT-A", 133, 1840},
				{"HASH-A", "GANTRY-HASH-A", 1973, 20},
				{"RESERVED-A", "GANTRY-RESERVED-A", 1993, 12},
				{"PRIVATE", "GANTRY-PRIVATE", 2005, 41},
				{"DATA-A", "", 2046, 1},
			},
			dataMiB: 1024, dataSizeMB: 1022,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Plan(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := l.OS.Size / MiB; got != tt.osMiB {
				t.Errorf("OS disk is %d MiB, want %d", got, tt.osMiB)
			}
			got := rows(l.OS.Partitions)
			if fmt.Sprint(got) != fmt.Sprint(tt.os) {
				t.Errorf("OS layout:\n got %v\nwant %v", got, tt.os)
			}
			for i, p := range l.OS.Partitions {
				if p.Number != i+1 {
					t.Errorf("%s is entry %d, want %d", p.Role(), p.Number, i+1)
				}
			}
			if tt.dataMiB == 0 {
				if l.Data != nil {
					t.Fatalf("unified plan has a data disk")
				}
			} else {
				if l.Data == nil {
					t.Fatalf("split plan has no data disk")
				}
				want := []row{{"DATA-B", "", 1, tt.dataSizeMB}}
				if l.Data.Size/MiB != tt.dataMiB || fmt.Sprint(rows(l.Data.Partitions)) != fmt.Sprint(want) {
					t.Errorf("data disk %d MiB %v, want %d MiB %v", l.Data.Size/MiB, rows(l.Data.Partitions), tt.dataMiB, want)
				}
			}
		})
	}
}

func TestPlanTypesGUIDsAttributes(t *testing.T) {
	for _, plan := range []PartitionPlan{Split, Unified} {
		t.Run(string(plan), func(t *testing.T) {
			l, err := Plan(Options{PartitionPlan: plan})
			if err != nil {
				t.Fatal(err)
			}
			wantType := map[string]string{
				"BIOS": TypeBIOSBoot, "EFI-A": TypeEFISystem, "EFI-B": TypeEFIBackup,
				"BOOT-A": TypeBoot, "BOOT-B": TypeBoot, "ROOT-A": TypeRoot, "ROOT-B": TypeRoot,
				"HASH-A": TypeHash, "HASH-B": TypeHash, "RESERVED-A": TypeReserved, "RESERVED-B": TypeReserved,
				"PRIVATE": TypePrivate, "DATA-A": TypeData, "DATA-B": TypeData,
			}
			guidRE := regexp.MustCompile(`^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$`)
			seen := map[string]string{}
			all := append(l.OS.Partitions, func() Partitions {
				if l.Data != nil {
					return l.Data.Partitions
				}
				return nil
			}()...)
			for _, p := range all {
				if p.Type != wantType[p.Role()] {
					t.Errorf("%s has type %s, want %s", p.Role(), p.Type, wantType[p.Role()])
				}
				switch {
				case p.Role() == "DATA-A" && plan == Split, p.Role() == "DATA-B":
					want := map[string]string{"DATA-A": DataFallbackGUID, "DATA-B": DataPreferredGUID}[p.Role()]
					if p.GUID != want {
						t.Errorf("%s GUID %s, want %s", p.Role(), p.GUID, want)
					}
				case p.Role() == "DATA-A":
					if p.GUID != DataPreferredGUID {
						t.Errorf("unified DATA-A GUID %s, want the preferred %s", p.GUID, DataPreferredGUID)
					}
				default:
					if !guidRE.MatchString(p.GUID) {
						t.Errorf("%s GUID %q is not a random (v4) GUID", p.Role(), p.GUID)
					}
				}
				if other, dup := seen[p.GUID]; dup {
					t.Errorf("%s and %s share GUID %s", other, p.Role(), p.GUID)
				}
				seen[p.GUID] = p.Role()
				want := uint64(0)
				if p.Role() == "BOOT-A" {
					want = 1<<48 | 1<<56 // priority 1, successful
				}
				if p.Attributes != want {
					t.Errorf("%s attributes %#x, want %#x", p.Role(), p.Attributes, want)
				}
			}
			if !guidRE.MatchString(l.OS.GUID) {
				t.Errorf("disk GUID %q", l.OS.GUID)
			}
		})
	}
}

func TestPlanSeededIsReproducible(t *testing.T) {
	guids := func(seed string) string {
		l, err := Plan(Options{Rand: SeededRand([]byte(seed))})
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		b.WriteString(l.OS.GUID + l.Data.GUID)
		for _, p := range l.OS.Partitions {
			b.WriteString(p.GUID)
		}
		return b.String()
	}
	if a, b := guids("gantry aws-dev 1.2.3"), guids("gantry aws-dev 1.2.3"); a != b {
		t.Errorf("same seed, different GUIDs")
	}
	if a, b := guids("build 1"), guids("build 2"); a == b {
		t.Errorf("different seeds, same GUIDs")
	}
	// Without a seed, two plans differ.
	l1, _ := Plan(Options{})
	l2, _ := Plan(Options{})
	if l1.OS.Partitions[2].GUID == l2.OS.Partitions[2].GUID {
		t.Errorf("two unseeded plans share BOOT-A's GUID")
	}
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		opts Options
		want string
	}{
		{Options{OSImageGiB: -1}, "out of range"},
		{Options{DataImageGiB: -2}, "at least 1"},
		{Options{PartitionPlan: "mirrored"}, "unknown partition plan"},
		{Options{Rand: bytes.NewReader(make([]byte, 20))}, "random bytes"},
	}
	for _, tt := range tests {
		_, err := Plan(tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Plan(%+v) = %v, want an error containing %q", tt.opts, err, tt.want)
		}
	}
}

func TestSetsAndPrivate(t *testing.T) {
	l, err := Plan(Options{})
	if err != nil {
		t.Fatal(err)
	}
	sets, err := l.OS.Partitions.Sets()
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%s:%d,%d,%d %s:%d,%d,%d", sets[0].ID, sets[0].Boot.Number, sets[0].Root.Number, sets[0].Hash.Number,
		sets[1].ID, sets[1].Boot.Number, sets[1].Root.Number, sets[1].Hash.Number)
	if got != "A:3,4,5 B:8,9,10" {
		t.Errorf("sets %s", got)
	}
	if b, err := l.OS.Partitions.Set(SetB); err != nil || b.Root.Name != "GANTRY-ROOT-B" || !b.Contains(10) || b.Contains(4) {
		t.Errorf("Set(B) = %+v, %v", b, err)
	}
	if p, err := l.OS.Partitions.Private(); err != nil || p.Number != 12 {
		t.Errorf("Private() = %d, %v", p.Number, err)
	}
	if p, ok := l.OS.Partitions.ByRole("ROOT-B"); !ok || p.Number != 9 {
		t.Errorf("ByRole(ROOT-B) = %d, %v", p.Number, ok)
	}
	if p, ok := l.OS.Partitions.ByName("GANTRY-HASH-A"); !ok || p.Number != 5 {
		t.Errorf("ByName(GANTRY-HASH-A) = %d, %v", p.Number, ok)
	}

	single, _ := Plan(Options{SingleBank: true})
	if sets, err := single.OS.Partitions.Sets(); err != nil || len(sets) != 1 {
		t.Errorf("single bank: %d sets, %v", len(sets), err)
	}
	if _, err := single.OS.Partitions.Set(SetB); err == nil {
		t.Errorf("single bank has a set B")
	}

	// Broken tables.
	swap := append(Partitions(nil), l.OS.Partitions...)
	swap[3].Number, swap[4].Number = swap[4].Number, swap[3].Number // ROOT-A and HASH-A numbers swapped
	noPriv := append(Partitions(nil), l.OS.Partitions[:11]...)
	tests := []struct {
		name string
		ps   Partitions
		want string
	}{
		{"empty", nil, "no GANTRY-BOOT partition"},
		{"root/hash not after boot", swap, "BOOT+1 and BOOT+2"},
		{"no root for B", append(Partitions(nil), l.OS.Partitions[:8]...), "set B has no ROOT"},
	}
	for _, tt := range tests {
		if _, err := tt.ps.Sets(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Sets() = %v, want %q", tt.name, err, tt.want)
		}
	}
	if _, err := noPriv.Private(); err == nil {
		t.Errorf("Private() on a table without PRIVATE succeeded")
	}
}
