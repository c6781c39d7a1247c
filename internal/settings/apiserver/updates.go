package apiserver

import (
	"errors"
	"fmt"
	"github.com/gantry-os/gantry/internal/containers/exec"
	"net/http"

	"github.com/gantry-os/gantry/internal/update/updateapi"
)

// updateAction serves POST /actions/<name> for the update commands.
func (s *Server) updateAction(cmd string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		if s.cfg.Updates == nil {
			return 0, nil, &httpError{http.StatusServiceUnavailable, "updates are not configured on this node"}
		}
		if err := s.cfg.Updates.Start(cmd); err != nil {
			return 0, nil, updateError(err)
		}
		return http.StatusNoContent, nil, nil
	}
}

func updateError(err error) error {
	switch {
	case errors.Is(err, updateapi.ErrLocked):
		return &httpError{http.StatusLocked, err.Error()}
	case errors.Is(err, updateapi.ErrDisallowed):
		return &httpError{http.StatusConflict, err.Error()}
	case errors.Is(err, updateapi.ErrNoUpdate), errors.Is(err, updateapi.ErrNoStaged), errors.Is(err, updateapi.ErrUninitialized):
		return &httpError{http.StatusNotFound, err.Error()}
	}
	return err
}

func (s *Server) updateStatus(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if s.cfg.Updates == nil {
		return 0, nil, &httpError{http.StatusServiceUnavailable, "updates are not configured on this node"}
	}
	st, err := s.cfg.Updates.Status()
	if err != nil {
		return 0, nil, updateError(err)
	}
	return http.StatusOK, st, nil
}

func (s *Server) reboot(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if s.cfg.Reboot == nil {
		return 0, nil, &httpError{http.StatusServiceUnavailable, "reboot is not configured on this node"}
	}
	if err := s.cfg.Reboot(r.Context()); err != nil {
		return 0, nil, fmt.Errorf("reboot: %w", err)
	}
	return http.StatusNoContent, nil, nil
}

func (s *Server) containerStatus(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if s.cfg.Containers == nil {
		return 0, nil, &httpError{http.StatusServiceUnavailable, "container status is not configured on this node"}
	}
	doc, err := s.cfg.Containers()
	if err != nil {
		return 0, nil, fmt.Errorf("container status: %w", err)
	}
	return http.StatusOK, doc, nil
}

// exec upgrades to Bottlerocket's exec WebSocket (package exec).
func (s *Server) execSession(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Exec == nil {
		http.Error(w, "exec is not configured on this node", http.StatusServiceUnavailable)
		return
	}
	exec.Serve(w, r, s.cfg.Exec, s.log)
}
