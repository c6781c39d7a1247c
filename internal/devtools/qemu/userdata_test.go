package qemu

import (
	"bytes"
	"compress/gzip"
	"github.com/gantry-os/gantry/internal/testsupport"
	"os"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/internal/settings/userdata"
)

func gz(s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.Bytes()
}

// TestAddRepoURLs: the repository's URLs are added to user data that names
// no repository, keeping the user's text where TOML allows it, and user
// data that names a repository (either URL) is passed as it is.
func TestAddRepoURLs(t *testing.T) {
	urls := RepoURLs{Metadata: "http://10.0.2.2:4321/metadata/", Targets: "http://10.0.2.2:4321/targets/"}
	example, err := os.ReadFile(testsupport.RepoPath(t, "examples/user-data.toml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   []byte
		want UserDataRepo
		// contains are texts the result keeps or gains, in order.
		contains []string
		// reencoded: the text could not be kept (comments are dropped).
		reencoded bool
		wantErr   string
	}{
		{name: "no updates table", in: []byte("# mine\n[settings]\nmotd = \"hi\"\n"), want: UserDataRepoAdded,
			contains: []string{"# mine\n[settings]\nmotd = \"hi\"\n", addedComment, "[settings.updates]\nmetadata-base-url = \"http://10.0.2.2:4321/metadata/\"\ntargets-base-url = \"http://10.0.2.2:4321/targets/\"\n"}},
		{name: "no trailing newline", in: []byte("[settings]\nmotd = \"hi\""), want: UserDataRepoAdded,
			contains: []string{"motd = \"hi\"\n\n" + addedComment}},
		{name: "empty", in: nil, want: UserDataRepoAdded, contains: []string{"[settings.updates]\nmetadata-base-url"}},
		{name: "an updates table", in: []byte("[settings.updates]  # the repo\nseed = 7\n\n[settings.ntp]\ntime-servers = [\"a.example\"]\n"),
			want:     UserDataRepoAdded,
			contains: []string{"[settings.updates]  # the repo\n" + addedComment + "\nmetadata-base-url = \"http://10.0.2.2:4321/metadata/\"\ntargets-base-url = \"http://10.0.2.2:4321/targets/\"\nseed = 7\n", "[settings.ntp]"}},
		{name: "the example user data", in: example, want: UserDataRepoAdded,
			contains: []string{"# Example user data", "[settings.updates]\n" + addedComment + "\nmetadata-base-url"}},
		// The TOML decoder takes a [settings.updates] header after dotted
		// keys in it.
		{name: "updates by dotted keys", in: []byte("[settings]\nupdates.seed = 7\n"), want: UserDataRepoAdded,
			contains: []string{"updates.seed = 7\n", "[settings.updates]\nmetadata-base-url = \"http://10.0.2.2:4321/metadata/\""}},
		{name: "updates inline", in: []byte("[settings]\nupdates = { seed = 7 }\n"), want: UserDataRepoAdded, reencoded: true,
			contains: []string{"seed = 7", "targets-base-url = \"http://10.0.2.2:4321/targets/\""}},
		{name: "gzip", in: gz("[settings]\nmotd = \"zipped\"\n"), want: UserDataRepoAdded,
			contains: []string{"motd = \"zipped\"", "[settings.updates]\nmetadata-base-url"}},
		{name: "its own repository", in: []byte("[settings.updates]\nmetadata-base-url = \"https://u.example/metadata/\"\ntargets-base-url = \"https://u.example/targets/\"\n"),
			want: UserDataRepoOwn},
		{name: "its own targets only", in: []byte("[settings.updates]\ntargets-base-url = \"https://u.example/targets/\"\n"), want: UserDataRepoOwn},
		{name: "invalid TOML", in: []byte("[settings\n"), wantErr: "user data: src.toml:2: invalid TOML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, what, err := AddRepoURLs("src.toml", tt.in, urls)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if what != tt.want {
				t.Fatalf("got %q, want %q", what, tt.want)
			}
			if what == UserDataRepoOwn {
				if !bytes.Equal(out, tt.in) {
					t.Errorf("user data with its own repository was changed:\n%s", out)
				}
				return
			}
			text := string(out)
			rest := text
			for _, c := range tt.contains {
				i := strings.Index(rest, c)
				if i < 0 {
					t.Fatalf("result lacks %q (in order):\n%s", c, text)
				}
				rest = rest[i+len(c):]
			}
			if got := strings.Contains(text, addedComment); got == tt.reencoded {
				t.Errorf("added in the text: %v, want %v:\n%s", got, !tt.reencoded, text)
			}
			// The result is valid user data with the URLs; the rest of the
			// settings is the original's.
			before, err := userdata.Parse("in", tt.in)
			if err != nil {
				t.Fatal(err)
			}
			after, err := userdata.Parse("out", out)
			if err != nil {
				t.Fatalf("the result is not valid user data: %v\n%s", err, text)
			}
			upd, _ := after.Settings["updates"].(map[string]any)
			if upd[MetadataURLKey] != urls.Metadata || upd[TargetsURLKey] != urls.Targets {
				t.Errorf("updates in the result: %v", upd)
			}
			delete(upd, MetadataURLKey)
			delete(upd, TargetsURLKey)
			if len(upd) == 0 {
				delete(after.Settings, "updates")
			}
			if b, a := len(before.Settings), len(after.Settings); b != a {
				t.Errorf("settings groups: %d before, %d after", b, a)
			}
			// Adding again is a no-op: the result names a repository.
			if again, what, err := AddRepoURLs("out", out, RepoURLs{Metadata: "http://x/m/", Targets: "http://x/t/"}); err != nil || what != UserDataRepoOwn || !bytes.Equal(again, out) {
				t.Errorf("adding to the result again: %q, %v", what, err)
			}
		})
	}
}

// TestAddMirror: gantry run's registry is added as the ghcr.io mirror to
// user data without one, after the mirrors the user has for other
// registries; user data with a mirror for ghcr.io or "*" is passed as it
// is.
func TestAddMirror(t *testing.T) {
	const ep = "http://10.0.2.2:5123"
	added := "[[settings.container-registry.mirrors]]\nregistry = \"ghcr.io\"\nendpoint = [\"" + ep + "\"]\n"
	tests := []struct {
		name      string
		in        []byte
		want      UserDataRepo
		contains  []string
		reencoded bool
		mirrors   int
		wantErr   string
	}{
		{name: "none", in: []byte("# mine\n[settings]\nmotd = \"hi\"\n"), want: UserDataRepoAdded, mirrors: 1,
			contains: []string{"# mine\n[settings]\nmotd = \"hi\"\n", mirrorComment, added}},
		{name: "empty", in: nil, want: UserDataRepoAdded, mirrors: 1, contains: []string{added}},
		{name: "another registry's mirror", in: []byte("[[settings.container-registry.mirrors]]\nregistry = \"docker.io\"\nendpoint = [\"https://m.example\"]\n"),
			want: UserDataRepoAdded, mirrors: 2, contains: []string{"registry = \"docker.io\"", added}},
		{name: "credentials table", in: []byte("[[settings.container-registry.credentials]]\nregistry = \"ghcr.io\"\nusername = \"u\"\npassword = \"p\"\n"),
			want: UserDataRepoAdded, mirrors: 1, contains: []string{"username = \"u\"", added}},
		{name: "inline mirrors", in: []byte("# dropped\n[settings.container-registry]\nmirrors = [{registry = \"docker.io\", endpoint = [\"https://m.example\"]}]\n"),
			want: UserDataRepoAdded, mirrors: 2, reencoded: true},
		{name: "gzip", in: gz("[settings]\nmotd = \"hi\"\n"), want: UserDataRepoAdded, mirrors: 1, contains: []string{added}},
		{name: "its own ghcr.io mirror", in: []byte("[[settings.container-registry.mirrors]]\nregistry = \"ghcr.io\"\nendpoint = [\"https://mine.example\"]\n"),
			want: UserDataRepoOwn},
		{name: "a mirror for every registry", in: []byte("[[settings.container-registry.mirrors]]\nregistry = \"*\"\nendpoint = [\"https://mine.example\"]\n"),
			want: UserDataRepoOwn},
		{name: "not TOML", in: []byte("[settings\n"), wantErr: "user data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, what, err := AddMirror("ud.toml", tt.in, "ghcr.io", ep)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || what != tt.want {
				t.Fatalf("AddMirror = %v, %v; want %v", what, err, tt.want)
			}
			if what == UserDataRepoOwn {
				if !bytes.Equal(out, tt.in) {
					t.Errorf("user data with its own mirror was changed:\n%s", out)
				}
				return
			}
			s := string(out)
			for _, c := range tt.contains {
				if !strings.Contains(s, c) {
					t.Errorf("result lacks %q:\n%s", c, s)
				}
			}
			if tt.reencoded == strings.Contains(s, mirrorComment) {
				t.Errorf("reencoded = %v, but the result is:\n%s", tt.reencoded, s)
			}
			doc, err := userdata.Parse("out", out)
			if err != nil {
				t.Fatal(err)
			}
			cr, _ := doc.Settings["container-registry"].(map[string]any)
			ms := mirrorList(cr["mirrors"])
			if len(ms) != tt.mirrors || ms[len(ms)-1]["registry"] != "ghcr.io" {
				t.Errorf("mirrors %v, want %d ending with ghcr.io", ms, tt.mirrors)
			}
		})
	}
}
