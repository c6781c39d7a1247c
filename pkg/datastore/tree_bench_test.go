package datastore

import (
	"encoding/json"
	"fmt"
	"testing"
)

// BenchmarkUnflattenEncode measures rebuilding the body of GET /settings
// for 1,000 keys, which the apiserver pays after every commit.
func BenchmarkUnflattenEncode(b *testing.B) {
	pairs := map[string]json.RawMessage{}
	for i := 0; i < 1000; i++ {
		pairs[fmt.Sprintf(`settings.kernel.sysctl."bench.key%04d"`, i)] = json.RawMessage(`"123"`)
	}
	for b.Loop() {
		t, err := Unflatten(pairs, 1)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := t.AppendJSON(nil); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSplitStoredMatchesParseKey(t *testing.T) {
	for _, name := range []string{"a", "a.b", `a."b.c".d`, `settings.kernel.sysctl."vm.max_map_count"`, `"x.y"`} {
		k := MustKey(DataKey, name)
		segs, ok := splitStored(k.Name())
		if !ok || fmt.Sprint(segs) != fmt.Sprint(k.Segments()) {
			t.Errorf("splitStored(%q) = %v %v, want %v", name, segs, ok, k.Segments())
		}
	}
	for _, bad := range []string{`a."b`, "a..b", ""} {
		if _, ok := splitStored(bad); ok {
			t.Errorf("splitStored(%q) accepted", bad)
		}
	}
}
