// Command gantry-pause is the pause container of Gantry's Kubernetes pods
// (the sandbox that holds a pod's namespaces), built from source in place of
// registry.k8s.io/pause: it sleeps until SIGINT or SIGTERM and, as PID 1 of
// a pod that shares its PID namespace, reaps orphaned children.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
