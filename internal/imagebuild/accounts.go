package imagebuild

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// APIGroupGID is the gid of the `api` group, which owns the API socket (as
// in Bottlerocket).
const APIGroupGID = 274

// fixedIDs are Gantry's ids for the accounts that packages declare without
// one (sysusers "-" or a maintainer script's adduser --system), so that an id
// never changes between releases and files on persistent storage keep their
// owner. Anything not listed gets a stable id hashed from its name.
var fixedIDs = map[string]int{
	"systemd-journal":  190,
	"systemd-network":  192,
	"systemd-resolve":  193,
	"systemd-timesync": 194,
	"systemd-coredump": 195,
	"messagebus":       196,
	"_chrony":          197,
	"systemd-oom":      198,
	"api":              APIGroupGID,
}

// packageAccounts are the system accounts that packages create in their
// maintainer scripts (which never run here) rather than in sysusers.d.
var packageAccounts = map[string][]sysuser{
	"chrony": {{kind: 'u', name: "_chrony", id: "-", gecos: "Chrony daemon", home: "/var/lib/chrony"}},
	"dbus":   {{kind: 'u', name: "messagebus", id: "-", gecos: "System message bus", home: "/nonexistent"}},
}

// sysuser is one line of a sysusers.d file (kinds u, g and m).
type sysuser struct {
	kind                  byte
	name, id, gecos, home string
	shell, member         string
	// fromArg names where the entry comes from, for errors.
	fromArg string
}

// Account is a passwd entry.
type Account struct {
	Name               string
	UID, GID           int
	Gecos, Home, Shell string
}

// Group is a group entry.
type Group struct {
	Name    string
	GID     int
	Members []string
}

// accounts is the set being built.
type accounts struct {
	users  map[string]*Account
	groups map[string]*Group
	used   map[int]string // ids taken, uid and gid alike
}

// parseSysusers reads sysusers.d lines (u, g and m; r is ignored).
func parseSysusers(data, file string) ([]sysuser, error) {
	var out []sysuser
	for n, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f, err := splitQuoted(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, n+1, err)
		}
		for len(f) < 6 {
			f = append(f, "-")
		}
		kind := strings.TrimSuffix(f[0], "!")
		switch kind {
		case "u", "g":
			out = append(out, sysuser{kind: kind[0], name: f[1], id: f[2], gecos: f[3], home: f[4], shell: f[5], fromArg: file})
		case "m":
			out = append(out, sysuser{kind: 'm', name: f[1], member: f[2], fromArg: file})
		case "r":
		default:
			return nil, fmt.Errorf("%s:%d: unknown sysusers type %q", file, n+1, f[0])
		}
	}
	return out, nil
}

// splitQuoted splits a line at blanks, keeping "quoted strings" whole.
func splitQuoted(s string) ([]string, error) {
	var out []string
	for s = strings.TrimLeft(s, " \t"); s != ""; s = strings.TrimLeft(s, " \t") {
		if s[0] == '"' {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unterminated quote")
			}
			out = append(out, s[1:1+end])
			s = s[end+2:]
			continue
		}
		end := strings.IndexAny(s, " \t")
		if end < 0 {
			end = len(s)
		}
		out = append(out, s[:end])
		s = s[end:]
	}
	return out, nil
}

func newAccounts() *accounts {
	return &accounts{users: map[string]*Account{}, groups: map[string]*Group{}, used: map[int]string{}}
}

// stableID picks an id for name: its fixed id, or one hashed from the name
// in 800–989 that no other account holds.
func (a *accounts) stableID(name string) int {
	if id, ok := fixedIDs[name]; ok {
		return id
	}
	sum := sha256.Sum256([]byte(name))
	id := 800 + int(binary.BigEndian.Uint32(sum[:4])%190)
	for a.used[id] != "" && a.used[id] != name {
		id = 800 + (id-800+1)%190
	}
	return id
}

func (a *accounts) addGroup(name string, gid int) error {
	if g, ok := a.groups[name]; ok {
		if gid >= 0 && g.GID != gid {
			return fmt.Errorf("group %s: gid %d requested but it already has %d", name, gid, g.GID)
		}
		return nil
	}
	if gid < 0 {
		gid = a.stableID(name)
	}
	for _, g := range a.groups {
		if g.GID == gid {
			return fmt.Errorf("group %s: gid %d is taken by %s", name, gid, g.Name)
		}
	}
	a.groups[name] = &Group{Name: name, GID: gid}
	a.used[gid] = name
	return nil
}

// addUser adds a system user; id is sysusers syntax: "-", "UID",
// "UID:GID" or "UID:GROUP".
func (a *accounts) addUser(u sysuser) error {
	if _, ok := a.users[u.name]; ok {
		return nil
	}
	uid, gid, group := -1, -1, u.name
	if u.id != "-" && u.id != "" && !strings.HasPrefix(u.id, "/") {
		us, gs, hasG := strings.Cut(u.id, ":")
		n, err := strconv.Atoi(us)
		if err != nil {
			return fmt.Errorf("user %s: bad id %q", u.name, u.id)
		}
		uid = n
		if hasG {
			if n, err := strconv.Atoi(gs); err == nil {
				gid, group = n, ""
			} else {
				group = gs
			}
		}
	}
	if uid < 0 {
		uid = a.stableID(u.name)
	}
	for _, o := range a.users {
		if o.UID == uid {
			return fmt.Errorf("user %s: uid %d is taken by %s", u.name, uid, o.Name)
		}
	}
	if group != "" {
		if _, ok := a.groups[group]; !ok {
			want := -1
			if group == u.name {
				want = uid
				for _, g := range a.groups {
					if g.GID == uid {
						want = -1
					}
				}
			}
			if err := a.addGroup(group, want); err != nil {
				return fmt.Errorf("user %s: %w", u.name, err)
			}
		}
		gid = a.groups[group].GID
	}
	a.users[u.name] = &Account{Name: u.name, UID: uid, GID: gid, Gecos: dash(u.gecos), Home: dash(u.home), Shell: dash(u.shell)}
	a.used[uid] = u.name
	return nil
}

func dash(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

// apply adds sysusers entries: groups first, then users, then memberships,
// each in file order.
func (a *accounts) apply(entries []sysuser) error {
	for _, kind := range []byte{'g', 'u', 'm'} {
		for _, e := range entries {
			if e.kind != kind {
				continue
			}
			var err error
			switch kind {
			case 'g':
				gid := -1
				if n, perr := strconv.Atoi(e.id); perr == nil {
					gid = n
				}
				err = a.addGroup(e.name, gid)
			case 'u':
				err = a.addUser(e)
			case 'm':
				if err = a.addGroup(e.member, -1); err == nil {
					g := a.groups[e.member]
					g.Members = append(g.Members, e.name)
				}
			}
			if err != nil {
				return fmt.Errorf("%s: %w", e.fromArg, err)
			}
		}
	}
	return nil
}

// buildAccounts collects the accounts of the image: the packages'
// sysusers.d, the accounts their maintainer scripts would create, root,
// nobody, the api group and the variant's own.
func buildAccounts(s *stage, v *Variant, pkgs []string) (*accounts, error) {
	a := newAccounts()
	var entries []sysuser
	base := []sysuser{
		{kind: 'g', name: "root", id: "0"},
		{kind: 'u', name: "root", id: "0:0", gecos: "root", home: "/root"},
		{kind: 'g', name: "nogroup", id: "65534"},
		{kind: 'u', name: "nobody", id: "65534:65534", gecos: "nobody", home: "/nonexistent"},
		{kind: 'g', name: "api", id: strconv.Itoa(APIGroupGID)},
	}
	for i := range base {
		base[i].fromArg = "built-in accounts"
	}
	entries = append(entries, base...)
	dir, err := s.resolve("usr/lib/sysusers.d")
	if err != nil {
		return nil, err
	}
	files, _ := fs.Glob(s.root.FS(), dir+"/*.conf")
	sort.Strings(files)
	for _, f := range files {
		data, err := s.root.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("accounts: %w", err)
		}
		e, err := parseSysusers(string(data), "/"+f)
		if err != nil {
			return nil, fmt.Errorf("accounts: %w", err)
		}
		entries = append(entries, e...)
	}
	for _, p := range pkgs {
		for _, e := range packageAccounts[p] {
			e.fromArg = "package " + p
			entries = append(entries, e)
		}
	}
	for _, g := range v.Groups {
		entries = append(entries, sysuser{kind: 'g', name: g.Name, id: strconv.Itoa(g.GID), fromArg: "variant.toml"})
	}
	for _, u := range v.Users {
		entries = append(entries, sysuser{kind: 'u', name: u.Name, id: fmt.Sprintf("%d:%d", u.UID, u.GID), gecos: u.Gecos, home: u.Home, fromArg: "variant.toml"})
	}
	// Explicit ids first, so that hashed ids never take them.
	var explicit, dynamic []sysuser
	for _, e := range entries {
		if e.kind == 'm' || e.id == "-" || e.id == "" {
			dynamic = append(dynamic, e)
		} else {
			explicit = append(explicit, e)
		}
	}
	if err := a.apply(explicit); err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	if err := a.apply(dynamic); err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	for _, u := range a.users {
		if u.Home == "" {
			u.Home = "/nonexistent"
		}
		// There is no shell in the image and no login.
		if u.Shell == "" || !s.exists(strings.TrimPrefix(u.Shell, "/")) || isShell(path.Base(u.Shell)) {
			u.Shell = "/usr/sbin/nologin"
		}
	}
	return a, nil
}

// files renders /etc/passwd, /etc/group and /etc/shadow (every account
// locked), sorted by id.
func (a *accounts) files() (passwd, group, shadow string) {
	us := make([]*Account, 0, len(a.users))
	for _, u := range a.users {
		us = append(us, u)
	}
	sort.Slice(us, func(i, j int) bool { return us[i].UID < us[j].UID })
	gs := make([]*Group, 0, len(a.groups))
	for _, g := range a.groups {
		gs = append(gs, g)
	}
	sort.Slice(gs, func(i, j int) bool { return gs[i].GID < gs[j].GID })
	var p, g, sh strings.Builder
	for _, u := range us {
		fmt.Fprintf(&p, "%s:x:%d:%d:%s:%s:%s\n", u.Name, u.UID, u.GID, u.Gecos, u.Home, u.Shell)
		fmt.Fprintf(&sh, "%s:!*:::::::\n", u.Name)
	}
	for _, gr := range gs {
		m := append([]string(nil), gr.Members...)
		sort.Strings(m)
		fmt.Fprintf(&g, "%s:x:%d:%s\n", gr.Name, gr.GID, strings.Join(m, ","))
	}
	return p.String(), g.String(), sh.String()
}
