package main

import (
	"testing"
	"unicode/utf8"
)

// FuzzKVArgs feeds arbitrary bytes to every handle's argument decoder: it
// must never panic, and whatever it accepts must satisfy the checks the
// handlers rely on.
func FuzzKVArgs(f *testing.F) {
	for _, s := range []string{
		`{"key":"a"}`,
		`{"key":"a","value":"1"}`,
		`{"prefix":"a","limit":10}`,
		`{"key":"a","old":"1","new":"2"}`,
		`{"key":"a","absent":true,"new":"2"}`,
		`{"key":"\u00e9","value":"\ud83d\ude00"}`,
		`{"limit":1e3}`,
		`null`,
		`{"key":"a"} x`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if a, err := decodeArgs[keyArgs]("kv.get", raw); err == nil {
			if a.Key == "" || !utf8.ValidString(a.Key) {
				t.Fatalf("accepted key %q", a.Key)
			}
		}
		if a, err := decodeArgs[putArgs]("kv.put", raw); err == nil {
			if a.Key == "" || a.Value == nil {
				t.Fatalf("accepted put %+v", a)
			}
		}
		if a, err := decodeArgs[listArgs]("kv.list", raw); err == nil {
			if n := a.limit(); n < 1 || n > maxListLimit {
				t.Fatalf("accepted limit %d", n)
			}
		}
		if a, err := decodeArgs[casArgs]("kv.cas", raw); err == nil {
			if a.Key == "" || a.New == nil || (a.Old != nil) == a.Absent {
				t.Fatalf("accepted cas %+v", a)
			}
		}
	})
}
