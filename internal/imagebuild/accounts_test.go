package imagebuild

import (
	"strings"
	"testing"
)

func TestSplitQuoted(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{`u root 0 - /root /bin/bash`, []string{"u", "root", "0", "-", "/root", "/bin/bash"}},
		{`u systemd-network - "systemd Network Management"`, []string{"u", "systemd-network", "-", "systemd Network Management"}},
		{"g  tty\t5  -", []string{"g", "tty", "5", "-"}},
	}
	for _, tc := range tests {
		got, err := splitQuoted(tc.in)
		if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("splitQuoted(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := splitQuoted(`u x "open`); err == nil {
		t.Error("an unterminated quote is accepted")
	}
}

func TestBuildAccounts(t *testing.T) {
	s := newTestStage(t)
	put(t, s, map[string]string{
		"usr/lib/sysusers.d/basic.conf": "g tty 5 -\ng nogroup 65534 -\nu root 0 - /root /bin/bash\n" +
			"u sync 4:65534 - /bin /bin/sync\nu nobody 65534:65534 - /nonexistent /usr/sbin/nologin\n",
		"usr/lib/sysusers.d/systemd-journal.conf": "g systemd-journal - -\n",
		"usr/lib/sysusers.d/systemd-network.conf": `u systemd-network - "systemd Network Management"` + "\nm systemd-network tty\n",
		"usr/lib/sysusers.d/other.conf":           "u someservice - \"Some service\"\nr - 500-900\n",
	})
	v := &Variant{Groups: []GroupSpec{{Name: "extra", GID: 4000}}, Users: []UserSpec{{Name: "agent", UID: 4001, GID: 4000}}}
	acc, err := buildAccounts(s, v, []string{"chrony", "containerd"})
	if err != nil {
		t.Fatal(err)
	}
	passwd, group, shadow := acc.files()
	for _, want := range []string{
		"root:x:0:0:root:/root:/usr/sbin/nologin\n", // no shell in the image
		"sync:x:4:65534::/bin:/usr/sbin/nologin\n",
		"systemd-network:x:192:192:systemd Network Management:/nonexistent:/usr/sbin/nologin\n",
		"_chrony:x:197:197:Chrony daemon:/var/lib/chrony:/usr/sbin/nologin\n",
		"agent:x:4001:4000::/nonexistent:/usr/sbin/nologin\n",
	} {
		if !strings.Contains(passwd, want) {
			t.Errorf("passwd lacks %q:\n%s", want, passwd)
		}
	}
	for _, want := range []string{"tty:x:5:systemd-network\n", "systemd-journal:x:190:\n", "api:x:274:\n", "extra:x:4000:\n", "nogroup:x:65534:\n"} {
		if !strings.Contains(group, want) {
			t.Errorf("group lacks %q:\n%s", want, group)
		}
	}
	if !strings.HasPrefix(passwd, "root:") || !strings.HasSuffix(passwd, "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n") {
		t.Errorf("passwd is not sorted by uid:\n%s", passwd)
	}
	if strings.Count(shadow, ":!*:") != strings.Count(passwd, "\n") {
		t.Errorf("not every account is locked:\n%s", shadow)
	}
	// someservice has no fixed id: it gets a hashed one, the same each time.
	u := acc.users["someservice"]
	if u == nil || u.UID < 800 || u.UID >= 990 {
		t.Fatalf("someservice: %+v", u)
	}
	again, err := buildAccounts(s, v, []string{"chrony", "containerd"})
	if err != nil {
		t.Fatal(err)
	}
	p2, g2, _ := again.files()
	if p2 != passwd || g2 != group {
		t.Error("accounts differ between two runs")
	}
}

func TestAccountConflicts(t *testing.T) {
	tests := []struct {
		name  string
		conf  string
		extra []GroupSpec
		want  string
	}{
		{"gid taken", "g one 300 -\ng two 300 -\n", nil, "gid 300 is taken by one"},
		{"api gid taken", "g notapi 274 -\n", nil, "gid 274 is taken"},
		{"uid taken", "u a 300 -\nu b 300 -\n", nil, "uid 300 is taken by a"},
		{"bad id", "u a x:y -\n", nil, `bad id "x:y"`},
		{"unknown type", "z a - -\n", nil, "unknown sysusers type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStage(t)
			put(t, s, map[string]string{"usr/lib/sysusers.d/x.conf": tc.conf})
			_, err := buildAccounts(s, &Variant{Groups: tc.extra}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
