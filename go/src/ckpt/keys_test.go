package ckpt

import "testing"

func TestFnv1a32Vectors(t *testing.T) {
	for key, want := range map[string]uint32{
		"": 0x811c9dc5, "a": 0xe40c292c, "foobar": 0xbf9cf968, "0": 0x350ca8af, "15": 0x18eb258b,
		"héllo": 0x4aa48540, "日本": 0x9f26ee51, "key-12345": 0x2c5a647a, "🙂": 0x57a37a4b,
	} {
		if got := Fnv1a32(key); got != want {
			t.Errorf("Fnv1a32(%q) = %#x, want %#x", key, got, want)
		}
	}
}

// The values src/core/key-groups.ts's partitionIndex gives.
func TestPartitionIndexMatchesTypeScript(t *testing.T) {
	ns := []int{1, 2, 3, 7, 16, 100, 32768, 40000}
	want := map[string][]int{
		"":          {0, 0, 0, 1, 3, 23, 7621, 16261},
		"a":         {0, 0, 0, 2, 5, 32, 10540, 2220},
		"foobar":    {0, 1, 2, 6, 15, 94, 31080, 15720},
		"0":         {0, 0, 0, 2, 5, 31, 10415, 22063},
		"15":        {0, 0, 0, 2, 4, 29, 9611, 23755},
		"héllo":     {0, 0, 0, 0, 0, 4, 1344, 16000},
		"日本":        {0, 1, 2, 6, 13, 86, 28241, 8721},
		"key-12345": {0, 1, 2, 5, 12, 78, 25722, 1466},
		"🙂":         {0, 1, 2, 6, 15, 95, 31307, 11467},
	}
	for key, indexes := range want {
		for i, n := range ns {
			if got := PartitionIndex(key, n); got != indexes[i] {
				t.Errorf("PartitionIndex(%q, %d) = %d, want %d", key, n, got, indexes[i])
			}
		}
	}
}

// The values JavaScript's encodeURIComponent gives.
func TestEncodeKeyMatchesEncodeURIComponent(t *testing.T) {
	for key, want := range map[string]string{
		"a b": "a%20b", "ä/ö?": "%C3%A4%2F%C3%B6%3F", "-_.!~*'()": "-_.!~*'()", "x%y": "x%25y",
		"日本": "%E6%97%A5%E6%9C%AC", "🙂": "%F0%9F%99%82", "#&=+,;:@$": "%23%26%3D%2B%2C%3B%3A%40%24",
		"AZaz09": "AZaz09", "": "",
	} {
		if got := EncodeKey(key); got != want {
			t.Errorf("EncodeKey(%q) = %q, want %q", key, got, want)
		}
		if back := DecodeKey(want); back != key {
			t.Errorf("DecodeKey(%q) = %q, want %q", want, back, key)
		}
	}
	// Not an encoding: kept as it is, as decodeURIComponent's failure is handled in TypeScript.
	for _, raw := range []string{"%", "%zz", "%C3", "100%"} {
		if got := DecodeKey(raw); got != raw {
			t.Errorf("DecodeKey(%q) = %q, want it unchanged", raw, got)
		}
	}
}

func TestRouter(t *testing.T) {
	r := newRouter("src", []string{"sum-1", "sum-0", "sum-1"})
	if len(r.targets) != 2 || r.targets[0] != "sum-0" {
		t.Fatalf("targets %v, want sorted and distinct", r.targets)
	}
	all, _ := r.route(EmitOption{})
	if len(all) != 2 {
		t.Errorf("no option: %v, want every target", all)
	}
	one, _ := r.route(ByKey("foobar"))
	if len(one) != 1 || one[0] != "sum-1" {
		t.Errorf("ByKey(foobar) over 2: %v, want [sum-1]", one)
	}
	if _, err := r.route(ToTask("nope")); err == nil {
		t.Error("ToTask of a task that does not read from src: no error")
	}
}
