// Package status gathers what the node's containers did, for the API's GET
// /containers/status: host-ctr's status file of each host container, and
// this boot's reports of the bootstrap commands and containers.
package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gantry-os/gantry/internal/containers/bootstrap"
	"github.com/gantry-os/gantry/internal/containers/hostctr"
)

// Doc is the route's answer. A nil report means the group has not run at
// this boot (yet).
type Doc struct {
	HostContainers      map[string]hostctr.Status `json:"host-containers"`
	BootstrapCommands   *bootstrap.Report         `json:"bootstrap-commands"`
	BootstrapContainers *bootstrap.Report         `json:"bootstrap-containers"`
}

// Read gathers the status: host-ctr's files in hostStatusDir, the
// bootstrap reports in bootstrapDir.
func Read(hostStatusDir, bootstrapDir string) (*Doc, error) {
	d := &Doc{HostContainers: map[string]hostctr.Status{}}
	ents, err := os.ReadDir(hostStatusDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("host container status: %w", err)
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(name, "boot.") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(hostStatusDir, e.Name()))
		if err != nil {
			continue // removed meanwhile: the container is restarting
		}
		var st hostctr.Status
		if err := json.Unmarshal(b, &st); err != nil {
			return nil, fmt.Errorf("host container %s status: %w", name, err)
		}
		d.HostContainers[name] = st
	}
	if d.BootstrapCommands, err = bootstrap.ReadReport(bootstrap.StatusPath(bootstrapDir, bootstrap.Commands)); err != nil {
		return nil, err
	}
	if d.BootstrapContainers, err = bootstrap.ReadReport(bootstrap.StatusPath(bootstrapDir, bootstrap.Containers)); err != nil {
		return nil, err
	}
	return d, nil
}
