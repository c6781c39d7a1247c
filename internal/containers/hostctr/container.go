package hostctr

import (
	"fmt"
	"regexp"
)

// Kind is the type of a container: a long-running host container or a
// bootstrap container that runs to completion before the orchestrator.
type Kind string

// The container kinds.
const (
	Host      Kind = "host"
	Bootstrap Kind = "bootstrap"
)

// Container is what host-ctr is asked to run.
type Container struct {
	// Name is the settings name (host-containers.<name>).
	Name string
	Kind Kind
	// Source is the image reference.
	Source       string
	Superpowered bool
	// Command, when set, replaces the image's entry point and arguments.
	Command []string
}

// namePattern is the settings model's Identifier: ASCII letters, digits and
// '-', at most 76 characters.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9-]{1,76}$`)

// Validate reports a container host-ctr cannot run.
func (c Container) Validate() error {
	if !namePattern.MatchString(c.Name) {
		return fmt.Errorf("container name %q: must be 1-76 ASCII letters, digits or '-'", c.Name)
	}
	switch c.Kind {
	case Host:
	case Bootstrap:
		if c.Superpowered {
			return fmt.Errorf("container %s: a bootstrap container cannot be superpowered", c.Name)
		}
	default:
		return fmt.Errorf("container %s: unknown container type %q (want host or bootstrap)", c.Name, c.Kind)
	}
	if c.Source == "" {
		return fmt.Errorf("container %s: no source image", c.Name)
	}
	return nil
}

// ID is the containerd container ID: the name, with "boot." before a
// bootstrap container's.
func (c Container) ID() string {
	if c.Kind == Bootstrap {
		return "boot." + c.Name
	}
	return c.Name
}

// StorageDir is the folder under the local root that holds the kind's
// persistent directories.
func (k Kind) StorageDir() string {
	if k == Bootstrap {
		return "bootstrap-containers"
	}
	return "host-containers"
}

// privileged reports whether the container sees the host's root file
// system and devices: superpowered host containers and every bootstrap
// container.
func (c Container) privileged() bool { return c.Superpowered || c.Kind == Bootstrap }
