package imagebuild

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"

	"github.com/BurntSushi/toml"
)

// ContainerFile is the name of a container image's definition in its
// folder (containers/<name>/container.toml).
const ContainerFile = "container.toml"

// ContainerSpec is a parsed container.toml: an OCI image made of Debian
// packages and Gantry's own static commands, for host and bootstrap
// containers. See docs/host-containers.md.
type ContainerSpec struct {
	// Dir is the image's folder (absolute); Raw is container.toml's bytes
	// followed by the distribution file's.
	Dir string `toml:"-"`
	Raw []byte `toml:"-"`

	// Name is the image's name, e.g. admin.
	Name string `toml:"name"`
	// Arch is x86_64 (default) or aarch64.
	Arch string `toml:"arch"`
	// DistributionFrom is a TOML file (relative to the folder) whose
	// [distribution] table is used: the variants' base, so that images and
	// variants come from the same archive.
	DistributionFrom string           `toml:"distribution-from"`
	Distribution     DistributionSpec `toml:"-"`
	// Packages are the Debian packages, as in a variant (apt's closure
	// without Recommends, no maintainer scripts).
	Packages PackageSpec `toml:"packages"`
	// Commands are Gantry commands (cmd/<name>), built static and installed
	// as /usr/bin/<name>.
	Commands []string `toml:"commands"`
	// Files is a folder (relative) whose tree is copied over the root.
	Files string `toml:"files"`
	// Remove are root paths (globs) removed before the layer is made.
	Remove []string `toml:"remove"`
	// Config is the image's run configuration.
	Config ContainerConfigSpec `toml:"config"`
}

// ContainerConfigSpec is the [config] table: the OCI image configuration.
type ContainerConfigSpec struct {
	Entrypoint []string          `toml:"entrypoint"`
	Cmd        []string          `toml:"cmd"`
	Env        []string          `toml:"env"`
	WorkingDir string            `toml:"working-dir"`
	User       string            `toml:"user"`
	Labels     map[string]string `toml:"labels"`
}

var containerNameRe = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*$`)

// LoadContainer reads and checks dir/container.toml.
func LoadContainer(dir string) (*ContainerSpec, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("container folder %s: %w", dir, err)
	}
	file := filepath.Join(abs, ContainerFile)
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read container image definition: %w", err)
	}
	c := &ContainerSpec{Dir: abs, Raw: raw}
	md, err := toml.NewDecoder(bytes.NewReader(raw)).Decode(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("%s: unknown key %s", file, und[0])
	}
	if c.Arch == "" {
		c.Arch = "x86_64"
	}
	if !containerNameRe.MatchString(c.Name) {
		return nil, fmt.Errorf("%s: name %q: must be lower-case letters and digits, separated by '.', '_' or '-'", file, c.Name)
	}
	if _, err := debArch(c.Arch); err != nil {
		return nil, fmt.Errorf("%s: arch: %w", file, err)
	}
	if len(c.Config.Entrypoint) == 0 && len(c.Config.Cmd) == 0 {
		return nil, fmt.Errorf("%s: config: an entrypoint or a cmd is needed", file)
	}
	if len(c.Packages.Include) > 0 {
		if c.DistributionFrom == "" {
			return nil, fmt.Errorf("%s: packages need distribution-from (the file with the [distribution] table)", file)
		}
		p := c.DistributionFrom
		if !filepath.IsAbs(p) {
			p = filepath.Join(abs, p)
		}
		draw, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("%s: distribution-from: %w", file, err)
		}
		var d struct {
			Distribution DistributionSpec `toml:"distribution"`
		}
		// Only [distribution] is read; the file's other tables are a
		// variant's.
		if _, err := toml.NewDecoder(bytes.NewReader(draw)).Decode(&d); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if len(d.Distribution.Sources) == 0 || d.Distribution.Keyring == "" {
			return nil, fmt.Errorf("%s: no [distribution] sources and keyring", p)
		}
		if !filepath.IsAbs(d.Distribution.Keyring) {
			d.Distribution.Keyring = filepath.Join(filepath.Dir(p), d.Distribution.Keyring)
		}
		c.Distribution = d.Distribution
		c.Raw = append(append(c.Raw, 0), draw...)
	}
	if c.Files != "" && !filepath.IsAbs(c.Files) {
		c.Files = filepath.Join(abs, c.Files)
	}
	return c, nil
}

// Requested is the sorted set of packages asked of apt.
func (c *ContainerSpec) Requested() []string {
	out := slices.Clone(c.Packages.Include)
	sort.Strings(out)
	return slices.Compact(out)
}

// Excluded is the sorted exclude list.
func (c *ContainerSpec) Excluded() []string {
	out := slices.Clone(c.Packages.Exclude)
	sort.Strings(out)
	return slices.Compact(out)
}
