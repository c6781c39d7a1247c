package imagebuild

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// unitDir is where the image's units live; enablement links go beside them,
// in the verified root, rather than in /etc.
const unitDir = "usr/lib/systemd/system"

// unitSuffixes are the unit types copied from a units folder.
var unitSuffixes = []string{".service", ".socket", ".target", ".timer", ".path", ".mount", ".automount", ".swap", ".slice"}

func isUnitName(n string) bool {
	for _, s := range unitSuffixes {
		if strings.HasSuffix(n, s) && len(n) > len(s) {
			return true
		}
	}
	return false
}

// unitsResult counts what installUnits did.
type unitsResult struct {
	installed []string
	links     int
}

// installUnits copies Gantry's units (each folder in dirs that exists, later
// ones overriding earlier ones by name, drop-in folders NAME.d included),
// enables them and the variant's listed units by their [Install] sections,
// masks the variant's masked units and sets default.target.
func installUnits(s *stage, v *Variant, dirs []string) (*unitsResult, error) {
	res := &unitsResult{}
	own := map[string]bool{}
	for _, dir := range dirs {
		ents, err := os.ReadDir(dir)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("units: %w", err)
		}
		for _, e := range ents {
			name := e.Name()
			src := filepath.Join(dir, name)
			fi, err := os.Stat(src)
			if err != nil {
				return nil, fmt.Errorf("units: %w", err)
			}
			switch {
			case fi.Mode().IsRegular() && isUnitName(name):
				if err := s.copyIn(src, unitDir+"/"+name, 0o644); err != nil {
					return nil, fmt.Errorf("units: %s: %w", src, err)
				}
				own[name] = true
			case fi.IsDir() && strings.HasSuffix(name, ".d") && isUnitName(strings.TrimSuffix(name, ".d")):
				confs, _ := filepath.Glob(filepath.Join(src, "*.conf"))
				for _, c := range confs {
					if err := s.copyIn(c, unitDir+"/"+name+"/"+filepath.Base(c), 0o644); err != nil {
						return nil, fmt.Errorf("units: %s: %w", c, err)
					}
				}
			}
		}
	}
	for n := range own {
		res.installed = append(res.installed, n)
	}
	sort.Strings(res.installed)

	en := &enabler{s: s, done: map[string]bool{}}
	for _, n := range res.installed {
		if err := en.enable(n, false); err != nil {
			return nil, err
		}
	}
	for _, n := range v.Systemd.Enable {
		if err := en.enable(n, true); err != nil {
			return nil, err
		}
	}
	res.links = en.links

	target := v.Systemd.DefaultTarget
	if !s.exists(unitDir + "/" + target) {
		return nil, fmt.Errorf("units: systemd.default-target %s is not a unit in the image", target)
	}
	if err := s.symlink(target, unitDir+"/default.target"); err != nil {
		return nil, fmt.Errorf("units: default.target: %w", err)
	}
	for _, m := range v.Systemd.Mask {
		if err := s.symlink("/dev/null", "etc/systemd/system/"+m); err != nil {
			return nil, fmt.Errorf("units: mask %s: %w", m, err)
		}
	}
	return res, nil
}

// enabler creates the links `systemctl enable` would, in unitDir.
type enabler struct {
	s     *stage
	done  map[string]bool
	links int
}

// installSection is a unit's [Install] section.
type installSection struct {
	wantedBy, requiredBy, alias, also []string
	defaultInstance                   string
}

// enable links name into the targets of its [Install] section. Without
// one, a listed unit is an error and a Gantry unit is left static.
func (e *enabler) enable(name string, listed bool) error {
	if e.done[name] {
		return nil
	}
	e.done[name] = true
	file := name
	instance := ""
	if at := strings.Index(name, "@"); at >= 0 {
		dot := strings.LastIndex(name, ".")
		instance = name[at+1 : dot]
		file = name[:at+1] + name[dot:]
	}
	data, err := e.s.readFile(unitDir + "/" + file)
	if err != nil {
		return fmt.Errorf("units: enable %s: no unit file %s in the image", name, file)
	}
	inst := parseInstall(string(data))
	if instance == "" && strings.Contains(file, "@") {
		instance = inst.defaultInstance
		if instance == "" {
			if listed {
				return fmt.Errorf("units: enable %s: a template unit needs an instance (name@instance%s)", name, path.Ext(name))
			}
			return nil
		}
	}
	linkName := name
	if instance != "" {
		linkName = strings.TrimSuffix(file, path.Ext(file)) + instance + path.Ext(file)
	}
	if len(inst.wantedBy)+len(inst.requiredBy)+len(inst.alias)+len(inst.also) == 0 {
		if listed {
			return fmt.Errorf("units: enable %s: it has no [Install] section", name)
		}
		return nil
	}
	for _, t := range inst.wantedBy {
		if err := e.link(t+".wants", linkName, "../"+file); err != nil {
			return err
		}
	}
	for _, t := range inst.requiredBy {
		if err := e.link(t+".requires", linkName, "../"+file); err != nil {
			return err
		}
	}
	for _, a := range inst.alias {
		if err := e.link("", a, file); err != nil {
			return err
		}
	}
	for _, a := range inst.also {
		if err := e.enable(a, listed); err != nil {
			return err
		}
	}
	return nil
}

func (e *enabler) link(dir, name, target string) error {
	rel := unitDir + "/" + name
	if dir != "" {
		rel = unitDir + "/" + dir + "/" + name
	}
	if err := e.s.symlink(target, rel); err != nil {
		return fmt.Errorf("units: enable: %w", err)
	}
	e.links++
	return nil
}

// parseInstall reads the [Install] section of a unit file.
func parseInstall(data string) installSection {
	var in installSection
	section := ""
	sc := bufio.NewScanner(strings.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[]")
			continue
		}
		if section != "Install" {
			continue
		}
		k, val, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		words := strings.Fields(val)
		switch strings.TrimSpace(k) {
		case "WantedBy":
			in.wantedBy = append(in.wantedBy, words...)
		case "RequiredBy":
			in.requiredBy = append(in.requiredBy, words...)
		case "Alias":
			in.alias = append(in.alias, words...)
		case "Also":
			in.also = append(in.also, words...)
		case "DefaultInstance":
			in.defaultInstance = strings.TrimSpace(val)
		}
	}
	return in
}
