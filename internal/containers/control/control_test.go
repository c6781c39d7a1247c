package control

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/apitest"
	"github.com/gantry-os/gantry/internal/testsupport"
	"github.com/gantry-os/gantry/pkg/apiclient"
)

func TestServeMutualTLS(t *testing.T) {
	node := apitest.Start(t, "metal-dev")
	clients, servers, other := testsupport.NewCA(t, "clients"), testsupport.NewCA(t, "servers"), testsupport.NewCA(t, "someone else")
	now := time.Now()
	srvCert, srvKey := servers.Issue(t, "node", true, now.Add(-time.Minute), now.Add(time.Hour))
	cfg, err := ParseConfig([]byte(`{"listen":"127.0.0.1:0","server-certificate":` + jsonString(srvCert) +
		`,"server-key":` + jsonString(srvKey) + `,"client-ca":` + jsonString(clients.PEM) + `}`))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan net.Addr, 1)
	go Serve(ctx, cfg, node.Socket, slog.New(slog.NewTextHandler(io.Discard, nil)), func(a net.Addr) { addrc <- a })
	endpoint := "https://" + (<-addrc).String()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(servers.PEM))
	client := func(certPEM, keyPEM string) *apiclient.Client {
		tc := &tls.Config{RootCAs: roots}
		if certPEM != "" {
			pair, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
			if err != nil {
				t.Fatal(err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		c, err := apiclient.NewTLS(endpoint, tc)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	good := client(clients.Issue(t, "operator", false, now.Add(-time.Minute), now.Add(time.Hour)))
	if _, err := good.SetKeypairs(ctx, []string{"motd=over mutual TLS"}); err != nil {
		t.Fatalf("set over mTLS: %v", err)
	}
	doc, err := good.Get(ctx, []string{"settings.motd"})
	if err != nil || doc["settings"].(map[string]any)["motd"] != "over mutual TLS" {
		t.Fatalf("get over mTLS: %v %v", doc, err)
	}
	for _, tc := range []struct {
		name string
		c    *apiclient.Client
	}{
		{"no client certificate", client("", "")},
		{"a certificate of another CA", client(other.Issue(t, "stranger", false, now.Add(-time.Minute), now.Add(time.Hour)))},
		{"an expired certificate", client(clients.Issue(t, "former", false, now.Add(-2*time.Hour), now.Add(-time.Hour)))},
	} {
		if _, err := tc.c.Get(ctx, []string{"settings.motd"}); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func TestParseConfig(t *testing.T) {
	servers, clients := testsupport.NewCA(t, "s"), testsupport.NewCA(t, "c")
	cert, key := servers.Issue(t, "node", true, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	for _, tc := range []struct{ name, body, want string }{
		{"missing keys", `{}`, "client-ca, server-certificate, server-key must be set"},
		{"unknown key", `{"ssm": {}}`, `unknown field "ssm"`},
		{"bad listen", `{"listen": "8443"}`, "listen:"},
		{"key mismatch", `{"server-certificate":` + jsonString(cert) + `,"server-key":` + jsonString(strings.Replace(key, "A", "B", 3)) + `,"client-ca":` + jsonString(clients.PEM) + `}`, "server-certificate and server-key"},
		{"no CA", `{"server-certificate":` + jsonString(cert) + `,"server-key":` + jsonString(key) + `,"client-ca":"x"}`, "client-ca: no PEM certificate"},
		{"not JSON", `ssm`, "control user data"},
	} {
		if _, err := ParseConfig([]byte(tc.body)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	c, err := ParseConfig([]byte(`{"server-certificate":` + jsonString(cert) + `,"server-key":` + jsonString(key) + `,"client-ca":` + jsonString(clients.PEM) + `}`))
	if err != nil || c.Listen != DefaultListen {
		t.Errorf("defaults: %+v %v", c, err)
	}
}

func jsonString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
