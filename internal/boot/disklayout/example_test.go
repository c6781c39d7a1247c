package disklayout_test

import (
	"fmt"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
)

// The default OS disk: 2 GiB, two banks, data on a disk of its own.
func ExamplePlan() {
	l, err := disklayout.Plan(disklayout.Options{Rand: disklayout.SeededRand([]byte("example"))})
	if err != nil {
		panic(err)
	}
	for _, p := range l.OS.Partitions {
		fmt.Printf("%2d %-10s %-18s %5d %4d %#x\n", p.Number, p.Role(), p.Name, p.StartMiB(), p.SizeMiB(), p.Attributes)
	}
	// Output:
	//  1 BIOS       BIOS-BOOT              1    4 0x0
	//  2 EFI-A      EFI-SYSTEM             5   24 0x0
	//  3 BOOT-A     GANTRY-BOOT-A         29   40 0x101000000000000
	//  4 ROOT-A     GANTRY-ROOT-A         69  920 0x0
	//  5 HASH-A     GANTRY-HASH-A        989   10 0x0
	//  6 RESERVED-A GANTRY-RESERVED-A    999    6 0x0
	//  7 EFI-B      EFI-BACKUP          1005   24 0x0
	//  8 BOOT-B     GANTRY-BOOT-B       1029   40 0x0
	//  9 ROOT-B     GANTRY-ROOT-B       1069  920 0x0
	// 10 HASH-B     GANTRY-HASH-B       1989   10 0x0
	// 11 RESERVED-B GANTRY-RESERVED-B   1999    6 0x0
	// 12 PRIVATE    GANTRY-PRIVATE      2005   41 0x0
	// 13 DATA-A                         2046    1 0x0
}
