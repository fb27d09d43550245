package wire

import (
	"bytes"
	"testing"
)

// TestDecoderTake checks that bodies taken with Take stay intact through
// later Decodes, whatever their size and mode, and that Take hands over a
// large body without copying it after OwnLargeBodies (and for a message
// over 128 KiB in any case).
func TestDecoderTake(t *testing.T) {
	sizes := []int{0, 100, keptBufferMax, keptBufferMax + 1, 64 << 10, retainedBufferMax + 1}
	var stream []byte
	var bodies [][]byte
	for i, n := range sizes {
		body := bytes.Repeat([]byte{byte('a' + i)}, n)
		bodies = append(bodies, body)
		var err error
		if stream, err = AppendMessage(stream, &Message{Type: TypeReply, ID: uint64(i + 1), Body: body}, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, own := range []bool{false, true} {
		d := NewDecoder(bytes.NewReader(stream), 0)
		if own {
			d.OwnLargeBodies()
		}
		var taken [][]byte
		var m Message
		for i, n := range sizes {
			if err := d.Decode(&m); err != nil {
				t.Fatal(err)
			}
			got := d.Take(&m)
			l := ReplyOverhead + n // the decoder sizes buffers by L
			wantAlias := l > retainedBufferMax || (own && l > keptBufferMax)
			if alias := len(got) > 0 && &got[0] == &m.Body[0]; alias != wantAlias {
				t.Errorf("own=%v, %d bytes: Take handed over the decoder's buffer: %v, want %v", own, n, alias, wantAlias)
			}
			if n == 0 && got != nil {
				t.Errorf("own=%v: Take of an empty body = %v, want nil", own, got)
			}
			taken = append(taken, got)
			for j := range taken {
				if !bytes.Equal(taken[j], bodies[j]) {
					t.Fatalf("own=%v: body %d changed after decoding message %d", own, j, i)
				}
			}
		}
	}
}
