package imagebuild

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/devtools/k8stools"
	"github.com/gantry-os/gantry/pkg/model"
)

// VariantFile is the name of the variant definition in a variant folder.
const VariantFile = "variant.toml"

// Variant is a parsed variant.toml with its defaults filled in. The TOML keys
// are kebab-case; see docs/variants.md for the reference.
type Variant struct {
	// Dir is the variant folder (absolute); Raw is variant.toml's bytes.
	Dir string `toml:"-"`
	Raw []byte `toml:"-"`

	// Name is the variant's name, e.g. metal-dev; it becomes VARIANT_ID.
	Name string `toml:"name"`
	// Arch is the machine architecture: x86_64 (default) or aarch64.
	Arch string `toml:"arch"`
	// Version is the OS version (default: version.Version of the source
	// tree); it becomes VERSION_ID.
	Version string `toml:"version"`
	// Base is a TOML file (relative to the variant folder) that is read
	// before variant.toml: the variant's keys override the base's, table by
	// table and key by key. Variants share their distribution through it.
	Base string `toml:"base"`

	Distribution DistributionSpec `toml:"distribution"`
	Kernel       KernelSpec       `toml:"kernel"`
	Image        ImageSpec        `toml:"image"`
	Packages     PackageSpec      `toml:"packages"`
	Gantry       GantrySpec       `toml:"gantry"`
	Tools        ToolsSpec        `toml:"tools"`
	Images       ImagesSpec       `toml:"images"`
	Settings     SettingsSpec     `toml:"settings"`
	Systemd      SystemdSpec      `toml:"systemd"`
	Root         RootSpec         `toml:"root"`
	// Groups and Users are accounts added to those the packages declare.
	Groups []GroupSpec `toml:"groups"`
	Users  []UserSpec  `toml:"users"`
}

// DistributionSpec is the [distribution] table: the Debian archive the
// packages come from. The build reads nothing else: not the build host's
// apt sources, keys or configuration.
type DistributionSpec struct {
	// Name is the distribution and release, for people (debian-13).
	Name string `toml:"name"`
	// Keyring is the OpenPGP keyring that signs the archive's Release
	// files, relative to the file that names it (absolute once loaded).
	Keyring string `toml:"keyring"`
	// Sources are the archive's URIs with their suites and components.
	Sources []AptSource `toml:"sources"`
}

// AptSource is one [[distribution.sources]] entry: a deb822 stanza.
type AptSource struct {
	URI        string   `toml:"uri"`
	Suites     []string `toml:"suites"`
	Components []string `toml:"components"`
}

// String is the source as the lock records it.
func (s AptSource) String() string {
	return fmt.Sprintf("uri=%s suites=%s components=%s", s.URI, strings.Join(s.Suites, ","), strings.Join(s.Components, ","))
}

// SourceLines are the sources as the lock records them, one per source.
func (d DistributionSpec) SourceLines() []string {
	out := make([]string, len(d.Sources))
	for i, s := range d.Sources {
		out[i] = s.String()
	}
	return out
}

// KernelSpec is the [kernel] table.
type KernelSpec struct {
	// Package is the Debian kernel package, e.g. linux-image-cloud-amd64.
	Package string `toml:"package"`
	// Parameters start the kernel command line; the builder appends
	// gantry.roothash=<hex>.
	Parameters []string `toml:"parameters"`
	// Modules are the kernel modules kept in the root: module names
	// (dm_verity or dm-verity), folders below kernel/ (net/netfilter), or
	// "*" for all. Their dependencies and the initramfs modules are added.
	Modules []string `toml:"modules"`
	// InitramfsModules are loaded by gantry-init before it mounts the root.
	InitramfsModules []string `toml:"initramfs-modules"`
}

// ImageSpec is the [image] table.
type ImageSpec struct {
	// OSImageSizeGiB is the OS disk's size (default 2).
	OSImageSizeGiB int `toml:"os-image-size-gib"`
	// DataImageSizeGiB is the data partition's size (default 1).
	DataImageSizeGiB int `toml:"data-image-size-gib"`
	// PartitionPlan is split (default) or unified.
	PartitionPlan string `toml:"partition-plan"`
	// RootCompression is mkfs.erofs's -z argument (default lz4hc).
	RootCompression string `toml:"root-compression"`
	// RootClusterKiB is erofs's physical cluster size (default 256).
	RootClusterKiB int `toml:"root-cluster-kib"`
}

// PackageSpec is the [packages] table.
type PackageSpec struct {
	// Include are the Debian packages to install (the kernel package is
	// added); apt computes their closure without Recommends.
	Include []string `toml:"include"`
	// Exclude are packages treated as already present, so that apt never
	// pulls them in: the ones only maintainer scripts need (debconf, ucf,
	// adduser, initramfs-tools, ...). They are not in the image.
	Exclude []string `toml:"exclude"`
}

// GantrySpec is the [gantry] table.
type GantrySpec struct {
	// Commands are the commands of the node binary (cmd/gantry-node)
	// linked into /usr/bin: /usr/bin/<name> -> gantry-node.
	Commands []string `toml:"commands"`
}

// ToolsSpec is the [tools] table: programs built from source by the tools
// modules (gantry k8s-tools: kubelet, containerd 2, CNI plugins), which
// Debian does not package or packages too old.
type ToolsSpec struct {
	// Install maps a path in the root to the tools binary installed there,
	// e.g. "/usr/bin/kubelet" = "kubelet".
	Install map[string]string `toml:"install"`
}

// ImagesSpec is the [images] table: container images built with the OS
// image and carried in it.
type ImagesSpec struct {
	// Preload are Gantry's container images (containers/<name>) built with
	// the same epoch and installed as OCI image layouts in
	// /usr/share/gantry/images/<name>, which preload-images imports into
	// the orchestrator's containerd at boot.
	Preload []string `toml:"preload"`
}

// SettingsSpec is the [settings] table.
type SettingsSpec struct {
	// Groups are the settings groups of the variant's model.
	Groups []string `toml:"groups"`
}

// SystemdSpec is the [systemd] table.
type SystemdSpec struct {
	// DefaultTarget is what default.target points at (default
	// multi-user.target).
	DefaultTarget string `toml:"default-target"`
	// Enable are packaged units to enable by their [Install] sections.
	// Gantry's own units (variants/shared/units, <variant>/units) are
	// enabled without being listed.
	Enable []string `toml:"enable"`
	// Mask are units masked (linked to /dev/null).
	Mask []string `toml:"mask"`
}

// RootSpec is the [root] table.
type RootSpec struct {
	// Remove are absolute path patterns (path.Match syntax) removed from
	// the root after the built-in pruning.
	Remove []string `toml:"remove"`
	// Symlinks are links to create, path → target, as update-alternatives
	// would.
	Symlinks map[string]string `toml:"symlinks"`
}

// GroupSpec is one [[groups]] entry.
type GroupSpec struct {
	Name string `toml:"name"`
	GID  int    `toml:"gid"`
}

// UserSpec is one [[users]] entry.
type UserSpec struct {
	Name  string `toml:"name"`
	UID   int    `toml:"uid"`
	GID   int    `toml:"gid"`
	Home  string `toml:"home"`
	Gecos string `toml:"gecos"`
}

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*$`)
	debNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	unitRE    = regexp.MustCompile(`^[A-Za-z0-9:_.@\\-]+\.(service|socket|target|timer|path|mount|automount|swap|slice)$`)
	acctRE    = regexp.MustCompile(`^[a-z_][a-z0-9_-]*$`)
)

// forbiddenCommands are names that gantry.commands must not list.
var forbiddenCommands = map[string]string{
	"gantry":      "it is the build tool",
	"gantry-init": "it goes into the initramfs",
	NodeBinary:    "it is the binary the commands link to, installed anyway",
}

// LoadVariant reads dir/variant.toml (and the base file it names), fills in
// defaults and validates it. defaultVersion is used when the file names no
// version.
func LoadVariant(dir, defaultVersion string) (*Variant, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("variant folder %s: %w", dir, err)
	}
	file := filepath.Join(abs, VariantFile)
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read variant: %w", err)
	}
	v, err := ParseVariant(raw, file)
	if err != nil {
		return nil, err
	}
	v.Dir = abs
	if v.Version == "" {
		v.Version = defaultVersion
	}
	return v, nil
}

// ParseVariant decodes and validates variant.toml's bytes; file names them
// in errors, and relative paths in it (base, distribution.keyring) are
// relative to its folder. Unknown keys are errors. Raw becomes the base's
// bytes followed by the variant's, so that both count in the image digest.
func ParseVariant(raw []byte, file string) (*Variant, error) {
	own, ownKeys, err := decodeVariantFile(raw, file)
	if err != nil {
		return nil, err
	}
	v := &Variant{}
	var all []byte
	if own.Base != "" {
		basePath := own.Base
		if !filepath.IsAbs(basePath) {
			basePath = filepath.Join(filepath.Dir(file), basePath)
		}
		baseRaw, err := os.ReadFile(basePath)
		if err != nil {
			return nil, fmt.Errorf("%s: base: %w", file, err)
		}
		base, baseKeys, err := decodeVariantFile(baseRaw, basePath)
		if err != nil {
			return nil, err
		}
		if base.Base != "" {
			return nil, fmt.Errorf("%s: base: a base file cannot name another base", basePath)
		}
		layer(reflect.ValueOf(v).Elem(), reflect.ValueOf(base).Elem(), baseKeys, nil)
		all = append(append(all, baseRaw...), "\x00"...)
	}
	layer(reflect.ValueOf(v).Elem(), reflect.ValueOf(own).Elem(), ownKeys, nil)
	v.Raw = append(all, raw...)
	v.setDefaults()
	if err := v.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return v, nil
}

// decodeVariantFile decodes one file on its own: its values, and which keys
// it sets. A keyring it names is made absolute against its folder.
func decodeVariantFile(raw []byte, file string) (*Variant, toml.MetaData, error) {
	f := &Variant{}
	md, err := toml.NewDecoder(bytes.NewReader(raw)).Decode(f)
	if err != nil {
		return nil, md, fmt.Errorf("%s: %w", file, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, md, fmt.Errorf("%s: unknown keys: %s", file, strings.Join(keys, ", "))
	}
	if k := f.Distribution.Keyring; k != "" && !filepath.IsAbs(k) {
		f.Distribution.Keyring = filepath.Join(filepath.Dir(file), k)
	}
	return f, md, nil
}

// layer puts the keys a file sets (md) over dst, field by field: a list of
// strings extends dst's (extendList), a table's keys are added to dst's,
// and any other value, arrays of tables included, replaces dst's.
func layer(dst, src reflect.Value, md toml.MetaData, prefix []string) {
	t := dst.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := append(slices.Clone(prefix), name)
		d, s := dst.Field(i), src.Field(i)
		switch {
		case d.Kind() == reflect.Struct:
			layer(d, s, md, key)
		case !md.IsDefined(key...):
		case d.Kind() == reflect.Slice && d.Type().Elem().Kind() == reflect.String:
			d.Set(reflect.ValueOf(extendList(d.Interface().([]string), s.Interface().([]string))))
		case d.Kind() == reflect.Map && !d.IsNil():
			for it := s.MapRange(); it.Next(); {
				d.SetMapIndex(it.Key(), it.Value())
			}
		default:
			d.Set(s)
		}
	}
}

func (v *Variant) setDefaults() {
	if v.Arch == "" {
		v.Arch = "x86_64"
	}
	if v.Image.OSImageSizeGiB == 0 {
		v.Image.OSImageSizeGiB = 2
	}
	if v.Image.DataImageSizeGiB == 0 {
		v.Image.DataImageSizeGiB = 1
	}
	if v.Image.PartitionPlan == "" {
		v.Image.PartitionPlan = string(disklayout.Split)
	}
	if v.Image.RootCompression == "" {
		v.Image.RootCompression = "lz4hc"
	}
	if v.Image.RootClusterKiB == 0 {
		v.Image.RootClusterKiB = 256
	}
	if v.Systemd.DefaultTarget == "" {
		v.Systemd.DefaultTarget = "multi-user.target"
	}
}

func (v *Variant) validate() error {
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if !nameRE.MatchString(v.Name) {
		fail("name %q: want lower-case letters, digits, dots and dashes", v.Name)
	}
	if _, err := debArch(v.Arch); err != nil {
		fail("arch: %v", err)
	}
	if v.Version != "" && !regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+~-]*$`).MatchString(v.Version) {
		fail("version %q: want something like 1.2.3", v.Version)
	}
	if err := v.Distribution.validate(); err != nil {
		fail("distribution: %v", err)
	}
	if v.Kernel.Package == "" {
		fail("kernel.package: required (e.g. linux-image-cloud-amd64)")
	}
	for _, p := range v.Kernel.Parameters {
		if p == "" || strings.ContainsAny(p, " \t\n") || strings.HasPrefix(p, "gantry.roothash=") {
			fail("kernel.parameters: %q must be one word and not gantry.roothash (the builder adds it)", p)
		}
	}
	for _, m := range append(slices.Clone(v.Kernel.Modules), v.Kernel.InitramfsModules...) {
		if m == "" || strings.Contains(m, "..") || strings.HasPrefix(m, "/") {
			fail("kernel modules: %q is not a module name, a folder below kernel/ or *", m)
		}
	}
	if v.Image.OSImageSizeGiB < 1 || v.Image.DataImageSizeGiB < 1 {
		fail("image: sizes must be at least 1 GiB")
	}
	known := map[string]bool{}
	for _, b := range k8stools.Binaries() {
		known[b.Name] = true
	}
	for _, name := range v.Images.Preload {
		if !nameRE.MatchString(name) {
			fail("images.preload: %q is not a folder name of containers/", name)
		}
	}
	for _, dst := range slices.Sorted(maps.Keys(v.Tools.Install)) {
		name := v.Tools.Install[dst]
		if !strings.HasPrefix(dst, "/usr/") || path.Clean(dst) != dst {
			fail("tools.install: %q: want a clean path under /usr (the read-only root)", dst)
		}
		if !known[name] {
			fail("tools.install.%q: %q is not a binary of the tools modules (gantry k8s-tools lists them)", dst, name)
		}
	}
	switch disklayout.PartitionPlan(v.Image.PartitionPlan) {
	case disklayout.Split, disklayout.Unified:
	default:
		fail("image.partition-plan %q: want split or unified", v.Image.PartitionPlan)
	}
	if v.Image.RootClusterKiB < 4 || v.Image.RootClusterKiB%4 != 0 {
		fail("image.root-cluster-kib %d: want a multiple of 4", v.Image.RootClusterKiB)
	}
	if len(v.Packages.Include) == 0 {
		fail("packages.include: name at least one package (systemd, containerd, ...)")
	}
	for _, p := range append(slices.Clone(v.Packages.Include), v.Packages.Exclude...) {
		if !debNameRE.MatchString(p) {
			fail("packages: %q is not a Debian package name", p)
		}
	}
	for _, p := range v.Packages.Exclude {
		if slices.Contains(v.Packages.Include, p) || p == v.Kernel.Package {
			fail("packages: %q is both included and excluded", p)
		}
	}
	if len(v.Gantry.Commands) == 0 {
		fail("gantry.commands: name the Gantry programs to install (apiserver, apiclient, ...)")
	}
	for _, c := range v.Gantry.Commands {
		if why, bad := forbiddenCommands[c]; bad {
			fail("gantry.commands: %s cannot be in the root: %s", c, why)
		} else if !nameRE.MatchString(c) {
			fail("gantry.commands: %q is not a command name", c)
		}
	}
	if err := checkGroups(v.Name, v.Settings.Groups); err != nil {
		fail("settings.groups: %v", err)
	}
	for _, u := range append(append([]string{v.Systemd.DefaultTarget}, v.Systemd.Enable...), v.Systemd.Mask...) {
		if !unitRE.MatchString(u) {
			fail("systemd: %q is not a unit name", u)
		}
	}
	for _, p := range v.Root.Remove {
		if !strings.HasPrefix(p, "/") || strings.Contains(p, "..") {
			fail("root.remove: %q must be an absolute path pattern", p)
		} else if _, err := path.Match(p, ""); err != nil {
			fail("root.remove: %q: %v", p, err)
		}
	}
	for p, t := range v.Root.Symlinks {
		if !strings.HasPrefix(p, "/") || strings.Contains(p, "..") || path.Clean(p) != p || t == "" {
			fail("root.symlinks: %q = %q: want an absolute, clean path and a target", p, t)
		}
	}
	for _, g := range v.Groups {
		if !acctRE.MatchString(g.Name) || g.GID <= 0 || g.GID >= 65534 {
			fail("groups: %q gid %d: want a name and a gid 1-65533", g.Name, g.GID)
		}
	}
	for _, u := range v.Users {
		if !acctRE.MatchString(u.Name) || u.UID <= 0 || u.UID >= 65534 || u.GID < 0 {
			fail("users: %q uid %d: want a name and a uid 1-65533", u.Name, u.UID)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid variant:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}

// extendList is a base's list extended by a variant's: the variant's
// entries are added after the base's (once each), and an entry "!x" removes
// x instead.
func extendList(base, add []string) []string {
	out := slices.Clone(base)
	for _, e := range add {
		if drop, ok := strings.CutPrefix(e, "!"); ok {
			out = slices.DeleteFunc(out, func(x string) bool { return x == drop })
			continue
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out
}

var (
	suiteRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
	uriRE   = regexp.MustCompile(`^(https?|file)://[^\s]+$`)
)

// validate checks the [distribution] table: at least one source, each with
// a URI, suites and components, and a keyring to check them with.
func (d DistributionSpec) validate() error {
	var errs []string
	if len(d.Sources) == 0 {
		errs = append(errs, "sources: name the archive (uri, suites, components), e.g. in the variant's base file")
	}
	for i, s := range d.Sources {
		if !uriRE.MatchString(s.URI) {
			errs = append(errs, fmt.Sprintf("sources[%d].uri %q: want an http, https or file URI", i, s.URI))
		}
		if len(s.Suites) == 0 || len(s.Components) == 0 {
			errs = append(errs, fmt.Sprintf("sources[%d]: name its suites and components", i))
		}
		for _, w := range append(slices.Clone(s.Suites), s.Components...) {
			if !suiteRE.MatchString(w) {
				errs = append(errs, fmt.Sprintf("sources[%d]: %q is not a suite or component name", i, w))
			}
		}
	}
	if d.Keyring == "" {
		errs = append(errs, "keyring: name the keyring that signs the archive")
	} else if fi, err := os.Stat(d.Keyring); err != nil || !fi.Mode().IsRegular() {
		errs = append(errs, fmt.Sprintf("keyring %s: not a readable file", d.Keyring))
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// checkGroups checks the settings groups against the model: each must be
// known, and a variant the model builds in must list exactly its groups.
func checkGroups(variant string, groups []string) error {
	if len(groups) == 0 {
		return fmt.Errorf("name the variant's settings groups")
	}
	known := map[string]bool{}
	for _, g := range model.Groups() {
		known[g.Name] = true
	}
	for _, g := range groups {
		if !known[g] {
			return fmt.Errorf("unknown settings group %q", g)
		}
	}
	builtin, ok := model.BuiltinVariants()[variant]
	if !ok {
		return nil
	}
	want, got := slices.Clone(builtin), slices.Clone(groups)
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(want, got) {
		return fmt.Errorf("variant %s's groups in model.BuiltinVariants are %s; the variant file says %s",
			variant, strings.Join(want, ", "), strings.Join(got, ", "))
	}
	return nil
}

// debArch maps the variant's arch to Debian's (and Go's) name.
func debArch(arch string) (string, error) {
	switch arch {
	case "x86_64":
		return "amd64", nil
	case "aarch64":
		return "arm64", nil
	}
	return "", fmt.Errorf("%q is not supported (want x86_64 or aarch64)", arch)
}

// Requested is the sorted set of packages asked of apt: the includes, the
// kernel package and systemd-boot's (BootLoaderPackage, for the ESP).
func (v *Variant) Requested() []string {
	out := append(slices.Clone(v.Packages.Include), v.Kernel.Package, BootLoaderPackage)
	sort.Strings(out)
	return slices.Compact(out)
}

// Excluded is the sorted exclude list.
func (v *Variant) Excluded() []string {
	out := slices.Clone(v.Packages.Exclude)
	sort.Strings(out)
	return slices.Compact(out)
}
