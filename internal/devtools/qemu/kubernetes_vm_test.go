//go:build vm

package qemu

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gantry-os/gantry/internal/devtools/cluster"
	"github.com/gantry-os/gantry/internal/imagebuild"
	"github.com/gantry-os/gantry/internal/testsupport"
	"github.com/gantry-os/gantry/pkg/version"
)

// TestKubernetesJoinInVM boots the Kubernetes variant (metal-k8s-1.37)
// against a real control plane on the host (etcd, kube-apiserver,
// controller-manager and scheduler from the tools modules): configured only
// by user data, the node joins with a bootstrap token (TLS bootstrap),
// registers with its labels and taints and becomes Ready; a pod whose image
// comes from a registry on the host's loopback (through the ghcr.io
// mirror; the sandbox is Gantry's pause image, which the node carries and
// preloads, as the registry does not have it) runs, and kubectl logs
// and exec reach it through the kubelet; settings.kubernetes.max-pods set
// through the node's API becomes the node's capacity in the apiserver.
func TestKubernetesJoinInVM(t *testing.T) {
	bd, _ := vmK8sImage(t)
	tl := testsupport.K8sTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var clog strings.Builder
	c, err := cluster.Start(ctx, cluster.Options{Bin: cluster.BinariesFrom(tl.Path), Dir: t.TempDir(), Log: &clog})
	if err != nil {
		t.Fatalf("%v\n%s", err, clog.String())
	}
	defer c.Stop()
	tok, err := c.CreateToken(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := c.CA()
	if err != nil {
		t.Fatal(err)
	}

	reg := testsupport.StartRegistry(t)
	// Not the pause image: the node carries it (preload-images).
	publishGantryImages(ctx, t, reg, "admin")
	src := testsupport.RepoRoot(t)
	epoch := int64(1700000000)
	web := filepath.Join(src, "internal/containers/testdata/web")
	if _, err := imagebuild.BuildContainer(ctx, imagebuild.ContainerOptions{Dir: web, Source: src, Out: t.TempDir(),
		LockFile: copyLock(t, web), Epoch: &epoch, Push: []string{reg.Host + "/gantry-os/test-web:v1"}}); err != nil {
		t.Fatal(err)
	}

	// The admin container, reached over SSH (this variant has no API
	// bridge), reads the node's journal when something fails.
	signer, adminUD := adminKey(t)
	sshPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	// The apiserver reaches the kubelet (logs, exec) on a tap device: the
	// host's .1, the node's .2 on eth1, its node IP.
	// QEMU's user network (eth0: DHCP, the default route, the host at
	// 10.0.2.2) lets nothing in.
	// A subnet of this process's own, so that two runs side by side do not
	// share one.
	subnet := fmt.Sprintf("192.168.%d", 20+os.Getpid()%200)
	tap := makeTap(t, subnet+".1/24")
	const tapMAC = "52:54:00:ab:cd:77"
	netTOML := filepath.Join(t.TempDir(), "net.toml")
	os.WriteFile(netTOML, []byte("version = 3\n\n[eth0]\ndhcp4 = true\nprimary = true\n\n[\""+tapMAC+"\".static4]\naddresses = [\""+subnet+".2/24\"]\n"), 0o644)
	ud := filepath.Join(t.TempDir(), "user-data.toml")
	os.WriteFile(ud, []byte(mirrorTOML(reg.Port)+fmt.Sprintf(`
[settings.kubernetes]
cluster-name = "gantry"
api-server = %q
cluster-certificate = %q
bootstrap-token = %q
node-ip = "%s.2"

[settings.host-containers.admin]
enabled = true
user-data = %q

[settings.kubernetes.node-labels]
"gantry.dev/role" = "test"

[settings.kubernetes.node-taints]
"gantry.dev/dedicated" = ["test:NoSchedule"]
`, c.GuestURL(), base64.StdEncoding.EncodeToString(ca), tok.String(), subnet, base64.StdEncoding.EncodeToString(adminUD))), 0o644)
	t0 := time.Now()
	n, err := Start(ctx, Options{BuildDir: bd, RunDir: vmRunDir(t, "k8s"), UserData: ud, StopTimeout: 30 * time.Second, MemoryMiB: 2048, CPUs: 2,
		NetTOML: netTOML, NICs: []NIC{{Tap: tap, MAC: tapMAC}}, Forwards: []Forward{{HostPort: sshPort, GuestPort: 22}}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { n.Stop(context.Background()) }()
	journal := func(units ...string) string { return sshJournal(ctx, signer, sshPort, units...) }

	// The node registers and becomes Ready.
	var node struct {
		Metadata struct {
			Name   string
			Labels map[string]string
		}
		Spec struct {
			Taints []struct{ Key, Value, Effect string }
		}
		Status struct {
			Conditions []struct{ Type, Status, Reason, Message string }
			NodeInfo   struct {
				OSImage                 string `json:"osImage"`
				ContainerRuntimeVersion string `json:"containerRuntimeVersion"`
				KubeletVersion          string `json:"kubeletVersion"`
			} `json:"nodeInfo"`
		}
	}
	ready := func() bool {
		out, err := c.Kubectl(ctx, nil, "get", "nodes", "-o", "json")
		var list struct{ Items []json.RawMessage }
		if err != nil || json.Unmarshal(out, &list) != nil || len(list.Items) == 0 {
			return false
		}
		json.Unmarshal(list.Items[0], &node)
		for _, cond := range node.Status.Conditions {
			if cond.Type == "Ready" {
				return cond.Status == "True"
			}
		}
		return false
	}
	for !ready() {
		if ctx.Err() != nil || time.Since(t0) > 6*time.Minute {
			out, _ := c.Kubectl(ctx, nil, "get", "nodes", "-o", "wide")
			t.Fatalf("the node is not Ready: %s\n%+v\njournal:\n%s", out, node.Status.Conditions, journal("kubelet", "containerd"))
		}
		time.Sleep(3 * time.Second)
	}
	t.Logf("node %s Ready %v after start: %s, %s, %s", node.Metadata.Name, time.Since(t0).Round(time.Second),
		node.Status.NodeInfo.OSImage, node.Status.NodeInfo.ContainerRuntimeVersion, node.Status.NodeInfo.KubeletVersion)
	if node.Metadata.Labels["gantry.dev/role"] != "test" {
		t.Errorf("labels %v", node.Metadata.Labels)
	}
	if len(node.Spec.Taints) != 1 || node.Spec.Taints[0].Key != "gantry.dev/dedicated" || node.Spec.Taints[0].Value != "test" || node.Spec.Taints[0].Effect != "NoSchedule" {
		t.Errorf("taints %+v", node.Spec.Taints)
	}
	if !strings.Contains(node.Status.NodeInfo.OSImage, "Gantry") || node.Status.NodeInfo.ContainerRuntimeVersion != "containerd://"+strings.TrimPrefix(tl.Containerd, "v") ||
		node.Status.NodeInfo.KubeletVersion != tl.Kubernetes {
		t.Errorf("node info %+v", node.Status.NodeInfo)
	}

	// A pod from the host's registry, tolerating the taint.
	pod := `apiVersion: v1
kind: Pod
metadata: {name: hello, namespace: default}
spec:
  tolerations: [{key: gantry.dev/dedicated, operator: Exists, effect: NoSchedule}]
  containers:
  - name: hello
    image: ghcr.io/gantry-os/test-web:v1
    command: ["/bin/busybox", "sh", "-c", "echo hello from the pod; exec /bin/busybox sleep 3600"]
`
	if _, err := c.Kubectl(ctx, []byte(pod), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if out, err := c.Kubectl(ctx, nil, "wait", "--for=condition=Ready", "pod/hello", "--timeout=5m"); err != nil {
		desc, _ := c.Kubectl(ctx, nil, "describe", "pod", "hello")
		t.Fatalf("the pod is not Ready: %v %s\n%s\njournal:\n%s", err, out, desc, journal("kubelet", "containerd"))
	}
	t.Logf("pod Ready %v after start", time.Since(t0).Round(time.Second))
	if !strings.Contains(n.Console(), "preload-images: ghcr.io/gantry-os/gantry-pause:v"+version.Version+" in namespace k8s.io") {
		t.Errorf("the pause image was not preloaded:\n%s", grepLines(n.Console(), "preload"))
	}
	if out, err := c.Kubectl(ctx, nil, "logs", "hello"); err != nil || !strings.Contains(string(out), "hello from the pod") {
		t.Errorf("kubectl logs: %v %q", err, out)
	}
	if out, err := c.Kubectl(ctx, nil, "exec", "hello", "--", "/bin/busybox", "echo", "exec works"); err != nil || string(out) != "exec works\n" {
		t.Errorf("kubectl exec: %v %q", err, out)
	}

	// settings.kubernetes.max-pods through the node's API (apiclient in the
	// admin container): the kubelet restarts and the node's capacity in the
	// apiserver follows.
	if out, err := sshRun(signer, sshPort, "apiclient set kubernetes.max-pods=42", ""); err != nil {
		t.Fatalf("apiclient set kubernetes.max-pods=42: %v\n%s", err, out)
	}
	t1 := time.Now()
	for {
		out, err := c.Kubectl(ctx, nil, "get", "node", node.Metadata.Name, "-o", "jsonpath={.status.capacity.pods}")
		if err == nil && string(out) == "42" {
			break
		}
		if time.Since(t1) > 3*time.Minute {
			t.Fatalf("the node's pod capacity after max-pods=42: %q %v\njournal:\n%s", out, err, journal("kubelet"))
		}
		time.Sleep(2 * time.Second)
	}
	t.Logf("capacity.pods = 42 %v after the set", time.Since(t1).Round(time.Second))
}

// sshJournal is the end of the units' journal on the node, read through the
// admin container over SSH (sheltie: a root shell on the host).
func sshJournal(ctx context.Context, signer ssh.Signer, port int, units ...string) string {
	cmd := "journalctl --no-pager -n 200"
	for _, u := range units {
		cmd += " -u " + u
	}
	out, err := sshRun(signer, port, "sudo sheltie", cmd+"\n")
	return fmt.Sprintf("%s(%v)", out, err)
}

// sshRun runs a command in the admin container over SSH, with stdin. It
// waits up to 3 minutes for sshd: the admin container starts after
// configured.target and pulls its image first.
func sshRun(signer ssh.Signer, port int, cmd, stdin string) (string, error) {
	cfg := &ssh.ClientConfig{User: "ec2-user", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, Timeout: 10 * time.Second,
		HostKeyCallback: ssh.InsecureIgnoreHostKey()}
	var c *ssh.Client
	var err error
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(2 * time.Second) {
		if c, err = ssh.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), cfg); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("ssh: %w", err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	s.Stdin = strings.NewReader(stdin)
	out, err := s.CombinedOutput(cmd)
	return string(out), err
}

// makeTap makes a tap device with the host address addr (CIDR), removed
// when the test ends. It needs root and ip(8).
func makeTap(t *testing.T, addr string) string {
	t.Helper()
	testsupport.RequireRoot(t, "a tap device")
	ip := testsupport.RequireTool(t, "ip")
	name := fmt.Sprintf("gtap%d", os.Getpid()%100000)
	for _, args := range [][]string{{"tuntap", "add", name, "mode", "tap"}, {"addr", "add", addr, "dev", name}, {"link", "set", name, "up"}} {
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			exec.Command(ip, "tuntap", "del", name, "mode", "tap").Run()
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	t.Cleanup(func() { exec.Command(ip, "tuntap", "del", name, "mode", "tap").Run() })
	return name
}
