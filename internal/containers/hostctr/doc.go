// Package hostctr runs one host or bootstrap container on host-containerd,
// the node's second containerd: it pulls the image (through the registry
// mirrors and credentials of settings.container-registry, with retries),
// builds the container's spec (mounts, namespaces and capabilities by
// container type, as Bottlerocket's host-ctr does), runs the task until it
// exits or is told to stop, and always removes the container and its
// snapshot afterwards, so that only the persistent directory under
// /local/host-containers (or /local/bootstrap-containers) outlives a run.
package hostctr
