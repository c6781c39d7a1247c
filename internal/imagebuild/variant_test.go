package imagebuild

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/pkg/model"
)

// minimalVariant has no base: its distribution names the repository's
// keyring relative to testVariantFile, where it is parsed.
const minimalVariant = `
name = "custom-dev"
[distribution]
keyring = "../shared/keys/debian-archive-keyring.gpg"
[[distribution.sources]]
uri = "http://deb.debian.org/debian"
suites = ["trixie"]
components = ["main"]
[kernel]
package = "linux-image-cloud-amd64"
[packages]
include = ["systemd"]
[gantry]
commands = ["apiserver"]
[settings]
groups = ["motd"]
`

// testVariantFile is where minimalVariant pretends to live: a variant
// folder of this source tree, so its base is the repository's.
func testVariantFile(t *testing.T) string {
	return filepath.Join(sourceRoot(t), "variants", "custom-dev", VariantFile)
}

func TestParseVariantDefaults(t *testing.T) {
	v, err := ParseVariant([]byte(minimalVariant), testVariantFile(t))
	if err != nil {
		t.Fatal(err)
	}
	if v.Arch != "x86_64" || v.Image.OSImageSizeGiB != 2 || v.Image.DataImageSizeGiB != 1 ||
		v.Image.PartitionPlan != "split" || v.Image.RootCompression != "lz4hc" || v.Image.RootClusterKiB != 256 ||
		v.Systemd.DefaultTarget != "multi-user.target" {
		t.Errorf("defaults not filled in: %+v", v)
	}
	if got := v.Requested(); !slices.Equal(got, []string{"linux-image-cloud-amd64", "systemd", BootLoaderPackage}) {
		t.Errorf("Requested = %v", got)
	}
	if d := v.Distribution; d.Keyring != filepath.Join(sourceRoot(t), "variants", "shared", "keys", "debian-archive-keyring.gpg") {
		t.Errorf("keyring %s: not made absolute against the variant file", d.Keyring)
	}
}

// baseVariant is a variant on the repository's base.
const baseVariant = `
name = "custom-dev"
base = "../shared/base.toml"
[gantry]
commands = ["api-bridge", "!updog"]
[packages]
include = ["socat", "systemd"]
`

// A variant's keys override its base's, key by key; its lists of strings
// extend the base's, and "!x" takes x out.
func TestVariantOverridesBase(t *testing.T) {
	v, err := ParseVariant([]byte(baseVariant), testVariantFile(t))
	if err != nil {
		t.Fatal(err)
	}
	d := v.Distribution
	if d.Name != "debian-13" || len(d.Sources) != 2 || d.Sources[0].Suites[0] != "trixie" ||
		d.Keyring != filepath.Join(sourceRoot(t), "variants", "shared", "keys", "debian-archive-keyring.gpg") {
		t.Errorf("distribution from the base, its keyring absolute against the base: %+v", d)
	}
	if !strings.Contains(string(v.Raw), "[distribution]") || !strings.HasSuffix(string(v.Raw), baseVariant) {
		t.Error("Raw does not hold the base and the variant (the image digest covers both)")
	}
	c := v.Gantry.Commands
	if !slices.Contains(c, "apiserver") || !slices.Contains(c, "api-bridge") || slices.Contains(c, "updog") || c[len(c)-1] != "api-bridge" {
		t.Errorf("commands %v: want the base's, without updog, then api-bridge", c)
	}
	if inc := v.Packages.Include; !slices.Contains(inc, "containerd") || countOf(inc, "systemd") != 1 || inc[len(inc)-1] != "socat" {
		t.Errorf("include %v: want the base's, then socat once, systemd once", inc)
	}
	if v.Kernel.Package != "linux-image-cloud-amd64" || len(v.Systemd.Mask) < 10 || v.Image.OSImageSizeGiB != 2 {
		t.Errorf("the base's keys and the defaults: %+v %+v", v.Kernel, v.Image)
	}

	text := baseVariant + `
[distribution]
keyring = "my-keys.gpg"
`
	_, err = ParseVariant([]byte(text), testVariantFile(t))
	want := filepath.Join(sourceRoot(t), "variants", "custom-dev", "my-keys.gpg") + ": not a readable file"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want the variant's keyring, relative to the variant (%s)", err, want)
	}
	text = baseVariant + `
[[distribution.sources]]
uri = "https://mirror.example.com/debian"
suites = ["trixie"]
components = ["main", "contrib"]
`
	v, err = ParseVariant([]byte(text), testVariantFile(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Distribution.Sources) != 1 || v.Distribution.Sources[0].URI != "https://mirror.example.com/debian" ||
		v.Distribution.Name != "debian-13" || !strings.HasSuffix(v.Distribution.Keyring, "debian-archive-keyring.gpg") {
		t.Errorf("sources replace the base's, the rest stays: %+v", v.Distribution)
	}
}

func TestParseVariantErrors(t *testing.T) {
	// Each case replaces text of minimalVariant (from → to), or appends to
	// it when from is empty.
	tests := []struct {
		name, from, to, want string
	}{
		{"unknown key", "", "[image]\ncolour = \"blue\"", "unknown keys: image.colour"},
		{"bad name", `"custom-dev"`, `"Custom Dev"`, `name "Custom Dev"`},
		{"arch", `name = "custom-dev"`, "name = \"custom-dev\"\narch = \"riscv64\"", `"riscv64" is not supported`},
		{"no kernel", `package = "linux-image-cloud-amd64"`, `package = ""`, "kernel.package: required"},
		{"roothash param", "[kernel]", "[kernel]\nparameters = [\"gantry.roothash=00\"]", "the builder adds it"},
		{"module path", "[kernel]", "[kernel]\nmodules = [\"/abs\"]", "is not a module name"},
		{"plan", "", "[image]\npartition-plan = \"mirrored\"", `partition-plan "mirrored"`},
		{"cluster", "", "[image]\nroot-cluster-kib = 6", "multiple of 4"},
		{"package name", `include = ["systemd"]`, `include = ["Bad_Name"]`, `"Bad_Name" is not a Debian package name`},
		{"include and exclude", `include = ["systemd"]`, "include = [\"systemd\"]\nexclude = [\"systemd\"]", "both included and excluded"},
		{"no commands", `commands = ["apiserver"]`, `commands = []`, "gantry.commands: name the Gantry programs"},
		{"init in root", `commands = ["apiserver"]`, `commands = ["gantry-init"]`, "it goes into the initramfs"},
		{"node binary", `commands = ["apiserver"]`, `commands = ["apiserver", "gantry-node"]`, "gantry-node cannot be in the root: it is the binary the commands link to"},
		{"unknown group", `groups = ["motd"]`, `groups = ["weather"]`, `unknown settings group "weather"`},
		{"unit name", "", "[systemd]\nenable = [\"containerd\"]", `"containerd" is not a unit name`},
		{"remove relative", "", "[root]\nremove = [\"usr/bin/x\"]", "must be an absolute path pattern"},
		{"symlink relative", "", "[root.symlinks]\n\"usr/bin/x\" = \"y\"", "absolute, clean path"},
		{"group gid", "", "[[groups]]\nname = \"g\"\ngid = 0", "gid 1-65533"},
		{"no base", `name = "custom-dev"`, "name = \"custom-dev\"\nbase = \"../shared/nope.toml\"", "base: open"},
		{"no sources", `uri = "http://deb.debian.org/debian"`, ``, `sources[0].uri ""`},
		{"source uri", `uri = "http://deb.debian.org/debian"`, `uri = "ftp://x"`, `sources[0].uri "ftp://x"`},
		{"source suites", `suites = ["trixie"]`, ``, "sources[0]: name its suites and components"},
		{"source suite name", `suites = ["trixie"]`, `suites = ["a b"]`, `"a b" is not a suite`},
		{"no keyring", `keyring = "../shared/keys/debian-archive-keyring.gpg"`, ``, "keyring: name the keyring"},
		{"distribution key", `[distribution]`, "[distribution]\nmirror = \"x\"", "unknown keys: distribution.mirror"},
		{"tools path", "", "[tools.install]\n\"/etc/kubelet\" = \"kubelet\"", `tools.install: "/etc/kubelet": want a clean path under /usr`},
		{"tools binary", "", "[tools.install]\n\"/usr/bin/kubeadm\" = \"kubeadm\"", `"kubeadm" is not a binary of the tools modules`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := minimalVariant + "\n" + tc.to + "\n"
			if tc.from != "" {
				if !strings.Contains(minimalVariant, tc.from) {
					t.Fatalf("case edits %q, which is not in the base variant", tc.from)
				}
				text = strings.Replace(minimalVariant, tc.from, tc.to, 1)
			}
			_, err := ParseVariant([]byte(text), testVariantFile(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// The repository's variants parse, and their settings groups are the
// model's. (TestNodeCommands checks their commands.)
func TestRepositoryVariants(t *testing.T) {
	root := sourceRoot(t)
	for name, groups := range model.BuiltinVariants() {
		t.Run(name, func(t *testing.T) {
			v, err := LoadVariant(filepath.Join(root, "variants", name), "9.9.9")
			if err != nil {
				t.Fatal(err)
			}
			if v.Name != name || v.Version != "9.9.9" {
				t.Errorf("name %q version %q", v.Name, v.Version)
			}
			got, want := slices.Sorted(slices.Values(v.Settings.Groups)), slices.Sorted(slices.Values(groups))
			if !slices.Equal(got, want) {
				t.Errorf("groups %v, model says %v", got, want)
			}
		})
	}
}

func TestBuiltinGroupsMustMatch(t *testing.T) {
	err := checkGroups("metal-dev", []string{"motd"})
	if err == nil || !strings.Contains(err.Error(), "model.BuiltinVariants") {
		t.Fatalf("error %v, want a mismatch with model.BuiltinVariants", err)
	}
}

func countOf(list []string, x string) int {
	n := 0
	for _, e := range list {
		if e == x {
			n++
		}
	}
	return n
}
