package tufrepo_test

import (
	"context"
	"fmt"
	"github.com/gantry-os/gantry/pkg/version"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/gantry-os/gantry/internal/update/manifest"
	"github.com/gantry-os/gantry/internal/update/tufrepo"
)

// A repository built in-process and served on 127.0.0.1, as a test of an
// update client would use it.
func Example() {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "tufrepo-example-*")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	// One key for every role (production repositories separate them).
	kp, err := tufrepo.GenerateKey(filepath.Join(tmp, "key"))
	if err != nil {
		log.Fatal(err)
	}
	key, err := tufrepo.LoadKey(kp.Private)
	if err != nil {
		log.Fatal(err)
	}
	one := tufrepo.RoleKeys{Keys: []*tufrepo.Key{key}}
	repo, err := tufrepo.Create(ctx, filepath.Join(tmp, "repo"), tufrepo.CreateOptions{Root: one, Targets: one, Snapshot: one, Timestamp: one})
	if err != nil {
		log.Fatal(err)
	}

	img := func(name string) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
			log.Fatal(err)
		}
		return p
	}
	v110 := version.Semver{Major: 1, Minor: 1}
	if _, err := repo.AddRelease(ctx, tufrepo.Release{
		Variant: "metal-dev", Arch: "x86_64", Version: v110,
		Boot: img("boot.img"), Root: img("root.img"), Hash: img("hash.img"),
		Migrations: []tufrepo.Migration{{Name: "migrate_v1.1.0_example", Path: img("migration")}},
		Transitions: map[manifest.Transition][]string{
			{From: version.Semver{Major: 1}, To: v110}: {"migrate_v1.1.0_example.zst"},
		},
		Waves: nil, // no waves: every node may update at once
	}); err != nil {
		log.Fatal(err)
	}

	// Serve it: metadata base URL and targets base URL.
	srv := httptest.NewServer(tufrepo.Handler(repo.Dir()))
	defer srv.Close()
	metadataURL, targetsURL := srv.URL+"/metadata/", srv.URL+"/targets/"

	// A client trusting root.json reads it.
	rep, err := tufrepo.Validate(ctx, tufrepo.ValidateOptions{
		MetadataURL: metadataURL, TargetsURL: targetsURL, TrustedRoot: repo.RootPath(),
	})
	if err != nil {
		log.Fatal(err)
	}
	u := rep.Manifest.Updates[0]
	fmt.Println(u.Variant, u.Arch, u.Version, u.Images.Boot)
	fmt.Println(len(rep.Targets), "targets")
	// Output:
	// metal-dev x86_64 1.1.0 gantry-metal-dev-x86_64-1.1.0-boot.img.zst
	// 5 targets
}
