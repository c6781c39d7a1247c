// Package cluster runs a real Kubernetes control plane on the host's
// loopback for tests and `gantry cluster`: etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler from the tools module's build
// (package k8stools), with their own CA, the RBAC a kubelet's TLS
// bootstrap needs (kubeadm's bindings: bootstrap tokens may ask for a client
// certificate, which the controller-manager approves and signs) and
// bootstrap tokens. A QEMU guest reaches it at 10.0.2.2, which the serving
// certificate names.
package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// GuestHost is the address a QEMU user-network guest reaches the host's
// loopback at.
const GuestHost = "10.0.2.2"

// Binaries names the programs the control plane runs.
type Binaries struct {
	Etcd, APIServer, ControllerManager, Scheduler, Kubectl string
}

// BinariesFrom names the programs by path(name), such as a k8stools
// build's Path.
func BinariesFrom(path func(name string) string) Binaries {
	return Binaries{Etcd: path("etcd"), APIServer: path("kube-apiserver"), ControllerManager: path("kube-controller-manager"),
		Scheduler: path("kube-scheduler"), Kubectl: path("kubectl")}
}

// Options configure Start.
type Options struct {
	Bin Binaries
	// Dir keeps the control plane's state: pki/, etcd/, logs/, the
	// kubeconfigs and the apiserver's port. A second Start on the same Dir
	// is the same cluster.
	Dir string
	// ServiceCIDR is the services' range (default 10.96.0.0/12).
	ServiceCIDR string
	// Log gets progress lines (nil: none).
	Log io.Writer
}

// Cluster is a running control plane.
type Cluster struct {
	o     Options
	pki   *pki
	procs []*proc
	// Port is the apiserver's port on 127.0.0.1.
	Port int
	// Kubeconfig is the admin's kubeconfig (system:masters).
	Kubeconfig string
}

// URL is the apiserver's address as the host reaches it.
func (c *Cluster) URL() string { return fmt.Sprintf("https://127.0.0.1:%d", c.Port) }

// GuestURL is the apiserver's address as a QEMU guest reaches it.
func (c *Cluster) GuestURL() string { return fmt.Sprintf("https://%s:%d", GuestHost, c.Port) }

// CA is the cluster's CA certificate (PEM), a node's
// settings.kubernetes.cluster-certificate (base64 of it).
func (c *Cluster) CA() ([]byte, error) { return os.ReadFile(c.pki.path("ca.crt")) }

// Start starts etcd, the apiserver, the controller-manager and the
// scheduler, waits until each is healthy and applies the bootstrap RBAC.
// On error everything started is stopped again.
func Start(ctx context.Context, o Options) (_ *Cluster, err error) {
	if o.ServiceCIDR == "" {
		o.ServiceCIDR = "10.96.0.0/12"
	}
	for _, b := range []string{o.Bin.Etcd, o.Bin.APIServer, o.Bin.ControllerManager, o.Bin.Scheduler, o.Bin.Kubectl} {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("cluster: %w (gantry k8s-tools builds them)", err)
		}
	}
	for _, d := range []string{"logs", "etcd"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	svcIP, err := firstServiceIP(o.ServiceCIDR)
	if err != nil {
		return nil, err
	}
	p, err := loadOrMakePKI(filepath.Join(o.Dir, "pki"),
		[]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(GuestHost), svcIP},
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"})
	if err != nil {
		return nil, err
	}
	c := &Cluster{o: o, pki: p, Kubeconfig: filepath.Join(o.Dir, "admin.kubeconfig")}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if c.Port, err = keptPort(filepath.Join(o.Dir, "apiserver.port")); err != nil {
		return nil, err
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	etcdClient, etcdPeer, kcmPort, schedPort := ports[0], ports[1], ports[2], ports[3]
	for _, k := range []struct{ name, user string }{{"admin", "admin"}, {"controller-manager", "controller-manager"}, {"scheduler", "scheduler"}} {
		if err := c.writeKubeconfig(filepath.Join(o.Dir, k.name+".kubeconfig"), c.URL(), p.path(k.user+".crt"), p.path(k.user+".key"), ""); err != nil {
			return nil, err
		}
	}

	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	if err := c.start("etcd", o.Bin.Etcd, "--name=gantry", "--data-dir="+filepath.Join(o.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=gantry="+peerURL, "--unsafe-no-fsync", "--log-level=warn"); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, etcdURL+"/health", nil, 60*time.Second, c.exited); err != nil {
		return nil, c.failed("etcd", err)
	}
	if err := c.start("kube-apiserver", o.Bin.APIServer,
		"--etcd-servers="+etcdURL, "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none", fmt.Sprintf("--secure-port=%d", c.Port),
		"--tls-cert-file="+p.path("apiserver.crt"), "--tls-private-key-file="+p.path("apiserver.key"),
		"--client-ca-file="+p.path("ca.crt"),
		"--kubelet-client-certificate="+p.path("apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+p.path("apiserver-kubelet-client.key"),
		// Nodes' host names are not in the host's DNS (kubeadm's choice).
		"--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p.path("sa.pub"), "--service-account-signing-key-file="+p.path("sa.key"),
		"--service-cluster-ip-range="+o.ServiceCIDR, "--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction", "--enable-bootstrap-token-auth=true",
		"--allow-privileged=true", "--profiling=false"); err != nil {
		return nil, err
	}
	admin, err := c.adminClient()
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, c.URL()+"/readyz", admin, 3*time.Minute, c.exited); err != nil {
		return nil, c.failed("kube-apiserver", err)
	}
	if err := c.start("kube-controller-manager", o.Bin.ControllerManager,
		"--kubeconfig="+filepath.Join(o.Dir, "controller-manager.kubeconfig"),
		"--authentication-kubeconfig="+filepath.Join(o.Dir, "controller-manager.kubeconfig"),
		"--authorization-kubeconfig="+filepath.Join(o.Dir, "controller-manager.kubeconfig"),
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", kcmPort),
		"--controllers=*,bootstrapsigner,tokencleaner", "--leader-elect=false",
		"--use-service-account-credentials=true", "--root-ca-file="+p.path("ca.crt"),
		"--service-account-private-key-file="+p.path("sa.key"),
		"--cluster-signing-cert-file="+p.path("ca.crt"), "--cluster-signing-key-file="+p.path("ca.key"),
		"--service-cluster-ip-range="+o.ServiceCIDR); err != nil {
		return nil, err
	}
	if err := c.start("kube-scheduler", o.Bin.Scheduler,
		"--kubeconfig="+filepath.Join(o.Dir, "scheduler.kubeconfig"),
		"--authentication-kubeconfig="+filepath.Join(o.Dir, "scheduler.kubeconfig"),
		"--authorization-kubeconfig="+filepath.Join(o.Dir, "scheduler.kubeconfig"),
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", schedPort), "--leader-elect=false"); err != nil {
		return nil, err
	}
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for name, port := range map[string]int{"kube-controller-manager": kcmPort, "kube-scheduler": schedPort} {
		if err := waitHTTP(ctx, fmt.Sprintf("https://127.0.0.1:%d/healthz", port), insecure, 2*time.Minute, c.exited); err != nil {
			return nil, c.failed(name, err)
		}
	}
	if _, err := c.Kubectl(ctx, []byte(bootstrapRBAC), "apply", "-f", "-"); err != nil {
		return nil, fmt.Errorf("cluster: bootstrap RBAC: %w", err)
	}
	c.logf("cluster: control plane ready at %s (guests: %s); kubeconfig %s", c.URL(), c.GuestURL(), c.Kubeconfig)
	return c, nil
}

// bootstrapRBAC lets bootstrap tokens ask for a kubelet's client
// certificate and has the controller-manager approve it, and the renewals,
// as kubeadm's bindings do.
const bootstrapRBAC = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "gantry:kubelet-bootstrap"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:node-bootstrapper"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "system:bootstrappers"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "gantry:node-autoapprove-bootstrap"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:certificates.k8s.io:certificatesigningrequests:nodeclient"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "system:bootstrappers"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "gantry:node-autoapprove-certificate-rotation"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "system:nodes"}]
`

// Token is a bootstrap token, id.secret.
type Token struct{ ID, Secret string }

func (t Token) String() string { return t.ID + "." + t.Secret }

// CreateToken makes a bootstrap token valid for ttl, for authentication
// (a kubelet's TLS bootstrap) in the group system:bootstrappers.
func (c *Cluster) CreateToken(ctx context.Context, ttl time.Duration) (Token, error) {
	t := Token{ID: randomToken(6), Secret: randomToken(16)}
	secret := fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: bootstrap-token-%s, namespace: kube-system}
type: bootstrap.kubernetes.io/token
stringData:
  token-id: %q
  token-secret: %q
  expiration: %q
  usage-bootstrap-authentication: "true"
  usage-bootstrap-signing: "true"
  auth-extra-groups: "system:bootstrappers:gantry"
`, t.ID, t.ID, t.Secret, time.Now().Add(ttl).UTC().Format(time.RFC3339))
	if _, err := c.Kubectl(ctx, []byte(secret), "apply", "-f", "-"); err != nil {
		return Token{}, fmt.Errorf("cluster: bootstrap token: %w", err)
	}
	return t, nil
}

// randomToken is n characters of [a-z0-9], a bootstrap token's alphabet.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	s := strings.ToLower(base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
	return s[:n]
}

// Kubectl runs kubectl as the admin with stdin and returns its standard
// output.
func (c *Cluster) Kubectl(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, c.o.Bin.Kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// WriteKubeconfig writes a kubeconfig for server (URL) with a bootstrap
// token or a client certificate.
func (c *Cluster) writeKubeconfig(path, server, cert, key, token string) error {
	user := fmt.Sprintf("    client-certificate: %s\n    client-key: %s\n", cert, key)
	if token != "" {
		user = fmt.Sprintf("    token: %s\n", token)
	}
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: gantry
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: user
  user:
%scontexts:
- name: gantry
  context: {cluster: gantry, user: user}
current-context: gantry
`, server, c.pki.path("ca.crt"), user)
	return os.WriteFile(path, []byte(cfg), 0o600)
}

// TokenKubeconfig writes a kubeconfig at path that authenticates with a
// bootstrap token, as a node's kubelet does before it has a certificate.
func (c *Cluster) TokenKubeconfig(path string, t Token) error {
	return c.writeKubeconfig(path, c.URL(), "", "", t.String())
}

func (c *Cluster) adminClient() (*http.Client, error) {
	cert, err := tls.LoadX509KeyPair(c.pki.path("admin.crt"), c.pki.path("admin.key"))
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c.pki.caCert)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}, nil
}

// proc is a running component; done closes when it has exited (a
// goroutine waits for it, so an exit is seen at once and leaves no zombie).
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// start runs a component with its output in logs/<name>.log.
func (c *Cluster) start(name, bin string, args ...string) error {
	log, err := os.OpenFile(filepath.Join(c.o.Dir, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("cluster: start %s: %w", name, err)
	}
	log.Close()
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	c.procs = append(c.procs, p)
	c.logf("cluster: %s started (pid %d, log %s)", name, cmd.Process.Pid, filepath.Join(c.o.Dir, "logs", name+".log"))
	return nil
}

// exited reports a component that stopped by itself.
func (c *Cluster) exited() error {
	for _, p := range c.procs {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v", p.name, p.cmd.ProcessState)
		default:
		}
	}
	return nil
}

// failed is an error naming the component and the end of its log.
func (c *Cluster) failed(name string, err error) error {
	b, _ := os.ReadFile(filepath.Join(c.o.Dir, "logs", name+".log"))
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return fmt.Errorf("cluster: %s is not healthy: %w\n%s", name, err, b)
}

// Stop stops the components in the reverse order (the apiserver before
// etcd: with etcd gone it hangs in its graceful shutdown).
func (c *Cluster) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
	c.procs = nil
}

func (c *Cluster) logf(format string, a ...any) {
	if c.o.Log != nil {
		fmt.Fprintf(c.o.Log, format+"\n", a...)
	}
}

// waitHTTP polls url until it answers 200, a component exits or timeout.
func waitHTTP(ctx context.Context, url string, client *http.Client, timeout time.Duration, exited func() error) error {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
		}
		last = err
		if err := exited(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// keptPort is the port in path, or a free one written there.
func keptPort(path string) (int, error) {
	if b, err := os.ReadFile(path); err == nil {
		if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return p, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("cluster: %w", err)
	}
	ps, err := freePorts(1)
	if err != nil {
		return 0, err
	}
	return ps[0], os.WriteFile(path, []byte(strconv.Itoa(ps[0])+"\n"), 0o644)
}

// freePorts returns n distinct ports free on 127.0.0.1 now.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("cluster: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// firstServiceIP is the first address of the service range, the
// kubernetes service's, which the serving certificate names.
func firstServiceIP(cidr string) (net.IP, error) {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil || n.IP.To4() == nil {
		return nil, fmt.Errorf("cluster: service range %q: want an IPv4 CIDR", cidr)
	}
	ip := n.IP.To4()
	return net.IPv4(ip[0], ip[1], ip[2], ip[3]+1), nil
}
