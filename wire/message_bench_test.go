package wire

import (
	"testing"
	"time"
)

var benchMessages = []struct {
	name string
	m    Message
}{
	{"call-64B", Message{Type: TypeCall, ID: 1, Timeout: time.Second, Handle: "kv/get", Body: make([]byte, 64)}},
	{"call-4KiB", Message{Type: TypeCall, ID: 1, Timeout: time.Second, Handle: "kv/put", Body: make([]byte, 4<<10)}},
	{"reply-64B", Message{Type: TypeReply, ID: 1, Body: make([]byte, 64)}},
	{"reply-64KiB", Message{Type: TypeReply, ID: 1, Body: make([]byte, 64<<10)}},
}

func BenchmarkAppendMessage(b *testing.B) {
	for _, bm := range benchMessages {
		b.Run(bm.name, func(b *testing.B) {
			buf := mustAppend(b, nil, &bm.m)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				buf, err = AppendMessage(buf[:0], &bm.m, DefaultMaxMessageSize)
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, bm := range benchMessages {
		b.Run(bm.name, func(b *testing.B) {
			buf := mustAppend(b, nil, &bm.m)
			d := NewDecoder(&loopReader{b: buf}, DefaultMaxMessageSize)
			var m Message
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				if err := d.Decode(&m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
