package proxy

import (
	"net/http"
	"strings"
	"testing"
)

func TestNoProxyList(t *testing.T) {
	tests := []struct {
		s    Settings
		want string
	}{
		{Settings{}, "localhost,127.0.0.1"},
		{Settings{NoProxy: []string{"10.0.0.0/8", ".corp.example", "localhost"}}, "10.0.0.0/8,.corp.example,localhost,127.0.0.1"},
		{Settings{APIServer: "https://k8s.example:6443", ClusterDomain: "cluster.local"}, "localhost,127.0.0.1,k8s.example,.cluster.local"},
	}
	for _, tt := range tests {
		if got := strings.Join(tt.s.NoProxyList(), ","); got != tt.want {
			t.Errorf("%+v: %s, want %s", tt.s, got, tt.want)
		}
	}
}

func TestFunc(t *testing.T) {
	if f, err := (Settings{}).Func(); f != nil || err != nil {
		t.Fatalf("no proxy: a proxy function (%v)", err)
	}
	if _, err := (Settings{HTTPSProxy: "http://"}).Func(); err == nil || !strings.Contains(err.Error(), "https-proxy") {
		t.Fatalf("bad proxy: %v", err)
	}
	f, err := Settings{HTTPSProxy: "proxy.example:3128", NoProxy: []string{".corp.example", "10.1.0.0/16"}}.Func()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ url, want string }{
		{"https://updates.example/metadata/timestamp.json", "http://proxy.example:3128"},
		{"http://10.0.2.2:8000/targets/x", "http://proxy.example:3128"},
		{"http://10.1.2.3/x", ""},
		{"https://repo.corp.example/x", ""},
		{"http://localhost:8080/x", ""},
		{"http://127.0.0.1:8080/x", ""},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest("GET", tt.url, nil)
		u, err := f(r)
		got := ""
		if u != nil {
			got = u.String()
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: proxy %q %v, want %q", tt.url, got, err, tt.want)
		}
	}
}
