package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// DefaultGroupsFile is where the image builder installs the variant's
// settings groups (its variant file's [settings] groups).
const DefaultGroupsFile = "/usr/share/gantry/settings-groups.json"

// GroupsFile is the content of the groups file: the variant it was built
// for and the names of its settings groups.
type GroupsFile struct {
	Variant string   `json:"variant"`
	Groups  []string `json:"groups"`
}

// Load returns the model of a node's variant. When path names a groups file
// (as every image has), the model has exactly the groups it lists, so a
// variant built out of tree gets the model its variant file asked for;
// variant, if not empty, must then match the file's. Without the file (a
// development machine), the built-in variants of this source tree are the
// only ones known. An empty path means DefaultGroupsFile.
func Load(variant, path string) (*Model, error) {
	if path == "" {
		path = DefaultGroupsFile
	}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ForVariant(variant)
	}
	if err != nil {
		return nil, fmt.Errorf("settings groups: %w", err)
	}
	var gf GroupsFile
	if err := json.Unmarshal(raw, &gf); err != nil {
		return nil, fmt.Errorf("settings groups %s: %w", path, err)
	}
	switch {
	case gf.Variant == "":
		return nil, fmt.Errorf("settings groups %s: \"variant\" is missing", path)
	case len(gf.Groups) == 0:
		return nil, fmt.Errorf("settings groups %s: \"groups\" is empty", path)
	case variant != "" && variant != gf.Variant:
		return nil, fmt.Errorf("settings groups %s are variant %s's, not %s's", path, gf.Variant, variant)
	}
	m, err := New(gf.Variant, gf.Groups)
	if err != nil {
		return nil, fmt.Errorf("settings groups %s: %w", path, err)
	}
	return m, nil
}

// MarshalGroupsFile is the groups file of a variant, as Load reads it.
func MarshalGroupsFile(variant string, groups []string) ([]byte, error) {
	if _, err := New(variant, groups); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(GroupsFile{Variant: variant, Groups: groups}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
