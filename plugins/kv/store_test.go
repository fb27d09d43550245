package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/pluginsdk/plugintest"
)

func dirConfig(t testing.TB, dir string) []byte {
	t.Helper()
	b, err := json.Marshal(storeConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func startInProcess(t testing.TB) *plugintest.Plugin {
	t.Helper()
	s := newStore()
	t.Cleanup(s.close) // after the plugin has stopped
	return plugintest.Start(t, s.config(), plugintest.Options{Config: dirConfig(t, t.TempDir())})
}

func call(t testing.TB, p *plugintest.Plugin, handle, args string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := p.Call(ctx, pluginsdk.PeerID{}, handle, []byte(args))
	return string(out), err
}

// TestHandles runs a script of calls against one store; each step sees the
// effects of the ones before it.
func TestHandles(t *testing.T) {
	p := startInProcess(t)
	steps := []struct {
		handle, args string
		want         string // exact JSON result
		wantErr      string // substring of the handler error
	}{
		{handle: "kv.get", args: `{"key":"a"}`, want: `{"found":false,"value":""}`},
		{handle: "kv.put", args: `{"key":"a","value":"1"}`, want: `{}`},
		{handle: "kv.put", args: `{"key":"ab","value":""}`, want: `{}`},
		{handle: "kv.put", args: `{"key":"b","value":"héllo ✓"}`, want: `{}`},
		{handle: "kv.get", args: `{"key":"a"}`, want: `{"found":true,"value":"1"}`},
		{handle: "kv.get", args: `{"key":"ab"}`, want: `{"found":true,"value":""}`},
		{handle: "kv.list", args: `{}`, want: `{"items":[{"key":"a","value":"1"},{"key":"ab","value":""},{"key":"b","value":"héllo ✓"}],"more":false}`},
		{handle: "kv.list", args: `{"prefix":"a"}`, want: `{"items":[{"key":"a","value":"1"},{"key":"ab","value":""}],"more":false}`},
		{handle: "kv.list", args: `{"prefix":"a","limit":1}`, want: `{"items":[{"key":"a","value":"1"}],"more":true}`},
		{handle: "kv.list", args: `{"prefix":"zz"}`, want: `{"items":[],"more":false}`},
		{handle: "kv.cas", args: `{"key":"a","old":"1","new":"2"}`, want: `{"swapped":true,"found":true,"value":"2"}`},
		{handle: "kv.cas", args: `{"key":"a","old":"1","new":"3"}`, want: `{"swapped":false,"found":true,"value":"2"}`},
		{handle: "kv.cas", args: `{"key":"a","absent":true,"new":"3"}`, want: `{"swapped":false,"found":true,"value":"2"}`},
		{handle: "kv.cas", args: `{"key":"c","absent":true,"new":"new"}`, want: `{"swapped":true,"found":true,"value":"new"}`},
		{handle: "kv.cas", args: `{"key":"d","old":"x","new":"y"}`, want: `{"swapped":false,"found":false,"value":""}`},
		{handle: "kv.delete", args: `{"key":"a"}`, want: `{"deleted":true}`},
		{handle: "kv.delete", args: `{"key":"a"}`, want: `{"deleted":false}`},
		{handle: "kv.get", args: `{"key":"a"}`, want: `{"found":false,"value":""}`},

		{handle: "kv.get", args: ``, wantErr: "want a JSON object"},
		{handle: "kv.get", args: `{"key":`, wantErr: "unexpected EOF"},
		{handle: "kv.get", args: `{}`, wantErr: `"key" is required`},
		{handle: "kv.get", args: `{"key":"a","extra":1}`, wantErr: `unknown field "extra"`},
		{handle: "kv.get", args: `{"key":"a"} {}`, wantErr: "trailing data"},
		{handle: "kv.get", args: `["a"]`, wantErr: "cannot unmarshal array"},
		{handle: "kv.put", args: `{"key":"a"}`, wantErr: `"value" is required`},
		{handle: "kv.put", args: `{"key":"a","value":1}`, wantErr: "cannot unmarshal number"},
		{handle: "kv.list", args: `{"limit":0}`, wantErr: `"limit" must be 1..1000`},
		{handle: "kv.list", args: `{"limit":1001}`, wantErr: `"limit" must be 1..1000`},
		{handle: "kv.cas", args: `{"key":"a","new":"x"}`, wantErr: `exactly one of "old" and "absent"`},
		{handle: "kv.cas", args: `{"key":"a","old":"1","absent":true,"new":"x"}`, wantErr: `exactly one of "old" and "absent"`},
		{handle: "kv.cas", args: `{"key":"a","absent":true}`, wantErr: `"new" is required`},
	}
	for i, st := range steps {
		got, err := call(t, p, st.handle, st.args)
		if st.wantErr != "" {
			var he *pluginsdk.Error
			if !errors.As(err, &he) || !strings.Contains(he.Message, st.wantErr) || !strings.HasPrefix(he.Message, st.handle+": arguments: ") {
				t.Errorf("step %d %s(%s): err = %v, want a handler error mentioning %q", i, st.handle, st.args, err, st.wantErr)
			}
			continue
		}
		if err != nil || got != st.want {
			t.Errorf("step %d %s(%s) = %s, %v; want %s", i, st.handle, st.args, got, err, st.want)
		}
	}
}

func TestListLimitDefault(t *testing.T) {
	p := startInProcess(t)
	for i := range defaultListLimit + 5 {
		if _, err := call(t, p, "kv.put", fmt.Sprintf(`{"key":"k%03d","value":"v"}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	out, err := call(t, p, "kv.list", `{"prefix":"k"}`)
	if err != nil {
		t.Fatal(err)
	}
	var r listResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Items) != defaultListLimit || !r.More || r.Items[0].Key != "k000" || r.Items[99].Key != "k099" {
		t.Fatalf("list: %d items, more=%v, first %v", len(r.Items), r.More, r.Items[0])
	}
}

func TestConfigure(t *testing.T) {
	tests := []struct {
		name, config, wantErr string
	}{
		{"missing", "", "configuration missing"},
		{"no dir", `{}`, `"dir" is required`},
		{"unknown field", `{"dir":"x","mode":1}`, `unknown field "mode"`},
		{"not json", `dir=x`, "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := newStore().configure(context.Background(), nil, []byte(tt.config))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
	t.Run("locked by another instance", func(t *testing.T) {
		dir := t.TempDir()
		a := newStore()
		defer a.close()
		if err := a.configure(context.Background(), nil, dirConfig(t, dir)); err != nil {
			t.Fatal(err)
		}
		b := newStore()
		defer b.close()
		if err := b.configure(context.Background(), nil, dirConfig(t, dir)); err == nil {
			t.Fatal("a second store opened the same directory")
		}
	})
}

// TestDurableAcrossKill acknowledges a put, kills the plugin process with
// SIGKILL, and reads the value back from a new process.
func TestDurableAcrossKill(t *testing.T) {
	path, sum := plugintest.Build(t, ".")
	opts := plugintest.Options{SHA256: sum, Config: dirConfig(t, filepath.Join(t.TempDir(), "data"))}

	p := plugintest.StartProcess(t, path, opts)
	if _, err := call(t, p, "kv.put", `{"key":"k","value":"survives"}`); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(p.Client().Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Client().Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("process did not exit")
	}
	if err := p.Client().ExitErr(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("ExitErr = %v, want killed", err)
	}

	p2 := plugintest.StartProcess(t, path, opts)
	got, err := call(t, p2, "kv.get", `{"key":"k"}`)
	if err != nil || got != `{"found":true,"value":"survives"}` {
		t.Fatalf("after kill -9: %s, %v", got, err)
	}
}
