package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/testsupport"
)

// TestControlPlane starts the real control plane and walks a kubelet's TLS
// bootstrap by hand: a bootstrap token authenticates as
// system:bootstrap:<id>, its CSR for a node client certificate is
// approved and signed by the controller-manager, and the certificate
// authenticates as the node. A restart on the same folder is the same
// cluster (same CA, the node's certificate still valid).
func TestControlPlane(t *testing.T) {
	tl := testsupport.K8sTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var log strings.Builder
	t0 := time.Now()
	c, err := Start(ctx, Options{Bin: BinariesFrom(tl.Path), Dir: dir, Log: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	defer c.Stop()
	t.Logf("control plane ready in %v", time.Since(t0).Round(time.Millisecond))
	if out, err := c.Kubectl(ctx, nil, "version", "-o", "json"); err != nil || !strings.Contains(string(out), `"gitVersion": "`+tl.Kubernetes+`"`) {
		t.Errorf("kubectl version: %v\n%s", err, out)
	}

	tok, err := c.CreateToken(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	boot := filepath.Join(dir, "bootstrap.kubeconfig")
	if err := c.TokenKubeconfig(boot, tok); err != nil {
		t.Fatal(err)
	}
	out, err := c.Kubectl(ctx, nil, "--kubeconfig", boot, "auth", "whoami", "-o", "json")
	if err != nil || !strings.Contains(string(out), `"system:bootstrap:`+tok.ID+`"`) || !strings.Contains(string(out), `"system:bootstrappers"`) {
		t.Fatalf("the bootstrap token's identity: %v\n%s", err, out)
	}
	if _, err := c.Kubectl(ctx, nil, "--kubeconfig", boot, "get", "secrets", "-n", "kube-system"); err == nil {
		t.Error("a bootstrap token may read secrets")
	}
	bad := filepath.Join(dir, "bad.kubeconfig")
	c.TokenKubeconfig(bad, Token{ID: tok.ID, Secret: strings.Repeat("0", 16)})
	if _, err := c.Kubectl(ctx, nil, "--kubeconfig", bad, "auth", "whoami"); err == nil || !strings.Contains(err.Error(), "Unauthorized") {
		t.Errorf("a wrong token secret: %v", err)
	}

	// The kubelet's CSR, as the bootstrap token.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "system:node:node-a", Organization: []string{"system:nodes"}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr := fmt.Sprintf(`apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata: {name: node-a-client}
spec:
  signerName: kubernetes.io/kube-apiserver-client-kubelet
  usages: [digital signature, client auth]
  request: %s
`, base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})))
	if _, err := c.Kubectl(ctx, []byte(csr), "--kubeconfig", boot, "create", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	var certPEM []byte
	for deadline := time.Now().Add(time.Minute); certPEM == nil; time.Sleep(time.Second) {
		out, err := c.Kubectl(ctx, nil, "get", "csr", "node-a-client", "-o", "json")
		var doc struct {
			Status struct {
				Certificate []byte
				Conditions  []struct{ Type string }
			}
		}
		if err == nil && json.Unmarshal(out, &doc) == nil && len(doc.Status.Certificate) > 0 {
			certPEM = doc.Status.Certificate
			if len(doc.Status.Conditions) == 0 || doc.Status.Conditions[0].Type != "Approved" {
				t.Errorf("conditions %+v", doc.Status.Conditions)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the CSR was not approved and signed: %v\n%s", err, out)
		}
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := c.CA()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the node's certificate does not chain to the cluster CA: %v", err)
	}
	if cert.Subject.CommonName != "system:node:node-a" {
		t.Errorf("subject %v", cert.Subject)
	}

	// The serving certificate names the address guests use.
	srv, err := tlsCert(c.pki.path("apiserver.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.VerifyHostname(GuestHost); err != nil {
		t.Error(err)
	}
	if !srv.IPAddresses[2].Equal(net.ParseIP("10.96.0.1")) {
		t.Errorf("serving certificate's addresses %v", srv.IPAddresses)
	}

	// Stopped and started again on the same folder: the same CA and port.
	port := c.Port
	c.Stop()
	if c, err = Start(ctx, Options{Bin: BinariesFrom(tl.Path), Dir: dir, Log: &log}); err != nil {
		t.Fatalf("restart: %v\n%s", err, log.String())
	}
	defer c.Stop()
	ca2, _ := c.CA()
	if c.Port != port || string(ca2) != string(ca) {
		t.Errorf("restart: port %d (was %d), same CA %v", c.Port, port, string(ca2) == string(ca))
	}
	if out, err := c.Kubectl(ctx, nil, "get", "csr", "node-a-client", "-o", "name"); err != nil || !strings.Contains(string(out), "node-a-client") {
		t.Errorf("the CSR after a restart: %v %s", err, out)
	}
}

func tlsCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s: not PEM", path)
	}
	return x509.ParseCertificate(block.Bytes)
}
