package datastore

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/gantry-os/gantry/pkg/version"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(context.Background(), dir, OpenOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func set(t *testing.T, s *Store, c Section, kv map[string]string) {
	t.Helper()
	pairs := map[Key]json.RawMessage{}
	for k, v := range kv {
		pairs[MustKey(DataKey, k)] = json.RawMessage(v)
	}
	if err := s.Set(context.Background(), c, pairs); err != nil {
		t.Fatal(err)
	}
}

func TestCommitMovesSettingsOnly(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	set(t, s, Live, map[string]string{"settings.motd": `"old"`})
	set(t, s, Pending("tx1"), map[string]string{"settings.motd": `"new"`, `settings.kernel.sysctl."vm.x"`: `"1"`, "services.foo.x": `1`})
	gen := s.Generation()
	keys, err := s.Commit(ctx, "tx1")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{`settings.kernel.sysctl."vm.x"`, "settings.motd"}; !reflect.DeepEqual(keys, want) {
		t.Fatalf("committed %v, want %v", keys, want)
	}
	if s.Generation() == gen {
		t.Error("generation did not change on commit")
	}
	live, _ := s.GetPrefix(ctx, Live, "")
	if string(live["settings.motd"]) != `"new"` || live["services.foo.x"] != nil {
		t.Fatalf("live after commit: %v", live)
	}
	txs, _ := s.Transactions(ctx)
	if len(txs) != 0 {
		t.Fatalf("transaction left after commit: %v", txs)
	}
	if _, err := s.Commit(ctx, "tx1"); !errors.Is(err, ErrNothingToCommit) {
		t.Fatalf("second commit: %v, want ErrNothingToCommit", err)
	}
}

func TestDeleteTxAndList(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	set(t, s, Pending("a"), map[string]string{"settings.motd": `"x"`})
	set(t, s, Pending("b"), map[string]string{"settings.motd": `"y"`})
	txs, _ := s.Transactions(ctx)
	if !reflect.DeepEqual(txs, []string{"a", "b"}) {
		t.Fatalf("transactions = %v", txs)
	}
	removed, err := s.DeleteTx(ctx, "a")
	if err != nil || !reflect.DeepEqual(removed, []string{"settings.motd"}) {
		t.Fatalf("DeleteTx = %v, %v", removed, err)
	}
	removed, _ = s.DeleteTx(ctx, "missing")
	if len(removed) != 0 {
		t.Fatalf("DeleteTx(missing) = %v", removed)
	}
}

func TestMetadataInheritance(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	as := MustKey(MetaKey, "affected-services")
	err := s.SetMetadata(ctx, []Metadata{
		{Key: MustKey(DataKey, "settings.network"), Name: as, Value: json.RawMessage(`["net"]`)},
		{Key: MustKey(DataKey, "settings.network.hostname"), Name: as, Value: json.RawMessage(`["hostname"]`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"settings.network.hostname": `["hostname"]`,
		"settings.network.hosts":    `["net"]`,
		"settings.motd":             ``,
	} {
		got, err := s.GetMetadata(ctx, as, MustKey(DataKey, key))
		if err != nil || string(got) != want {
			t.Errorf("GetMetadata(%s) = %s, %v; want %s", key, got, err, want)
		}
	}
	all, _ := s.ListMetadata(ctx, as)
	if len(all) != 2 {
		t.Fatalf("ListMetadata = %v", all)
	}
}

func TestSetRejectsInvalid(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	err := s.Set(ctx, Live, map[Key]json.RawMessage{MustKey(DataKey, "settings.a"): json.RawMessage(`{nope`)})
	if err == nil {
		t.Fatal("invalid JSON accepted")
	}
	err = s.Set(ctx, Pending("bad name"), map[Key]json.RawMessage{MustKey(DataKey, "settings.a"): json.RawMessage(`1`)})
	if err == nil {
		t.Fatal("invalid tx name accepted")
	}
	live, _ := s.GetPrefix(ctx, Live, "")
	if len(live) != 0 {
		t.Fatalf("something was written: %v", live)
	}
}

func TestOpenMissingAndLocked(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(ctx, t.TempDir(), OpenOptions{}); err == nil {
		t.Fatal("opening a missing datastore without Create succeeded")
	}
	_, dir := openTemp(t)
	_, err := Open(ctx, dir, OpenOptions{LockTimeout: 50e6})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
}

func TestLinkChain(t *testing.T) {
	base := t.TempDir()
	v1, _ := version.Parse("1.0.0")
	d1, err := NewVersionDir(base, v1)
	if err != nil {
		t.Fatal(err)
	}
	if err := LinkVersion(base, v1, d1); err != nil {
		t.Fatal(err)
	}
	got, dir, err := CurrentVersion(base)
	if err != nil || got != v1 || dir != d1 {
		t.Fatalf("CurrentVersion = %v %s %v", got, dir, err)
	}
	for link, target := range map[string]string{"current": "v1", "v1": "v1.0", "v1.0": "v1.0.0", "v1.0.0": filepath.Base(d1)} {
		if tgt, err := os.Readlink(filepath.Join(base, link)); err != nil || tgt != target {
			t.Errorf("%s -> %s (%v), want %s", link, tgt, err, target)
		}
	}
	v2, _ := version.Parse("v1.1.0")
	d2, _ := NewVersionDir(base, v2)
	if err := LinkVersion(base, v2, d2); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := CurrentVersion(base); got != v2 {
		t.Fatalf("after flip current = %v", got)
	}
	if v1.Compare(v2) != -1 || v2.Compare(v1) != 1 || v1.Compare(v1) != 0 {
		t.Error("Compare is wrong")
	}
}

func TestFlattenUnflatten(t *testing.T) {
	var doc any
	json.Unmarshal([]byte(`{"motd":"hi","kernel":{"sysctl":{"vm.x":"1"}},"list":[1,{"a":2}],"gone":null}`), &doc)
	pairs, err := Flatten([]string{"settings"}, doc)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for k, v := range pairs {
		names[k.Name()] = string(v)
	}
	want := map[string]string{"settings.motd": `"hi"`, `settings.kernel.sysctl."vm.x"`: `"1"`, "settings.list": `[1,{"a":2}]`}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("Flatten = %v, want %v", names, want)
	}
	raw := map[string]json.RawMessage{}
	for k, v := range names {
		raw[k] = json.RawMessage(v)
	}
	tree, err := Unflatten(raw, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(tree)
	if string(b) != `{"kernel":{"sysctl":{"vm.x":"1"}},"list":[1,{"a":2}],"motd":"hi"}` {
		t.Fatalf("Unflatten = %s", b)
	}
	raw["settings.motd.x"] = json.RawMessage(`1`)
	if _, err := Unflatten(raw, 1); err == nil {
		t.Fatal("conflicting keys accepted")
	}
}
