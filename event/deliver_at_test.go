package event

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDeliverAt(t *testing.T) {
	at, ok, err := DeliverAt([]byte(`{"trigger": "insert", "deliver_at": "2026-12-01T20:00:00.5+01:00"}`))
	require.NoError(t, err)
	require.True(t, ok)
	assert.True(t, at.Equal(time.Date(2026, 12, 1, 19, 0, 0, 5e8, time.UTC)), at)

	for _, meta := range []string{``, `{}`, `{"trigger": "insert"}`, `{"deliver_at": null}`, `{"note": "deliver_at"}`, `[1]`} {
		_, ok, err := DeliverAt([]byte(meta))
		assert.NoError(t, err, meta)
		assert.False(t, ok, meta)
	}
	for meta, says := range map[string]string{
		`{"deliver_at": "soon"}`:                 `metadata.deliver_at "soon" is not an RFC 3339 time`,
		`{"deliver_at": 17}`:                     `metadata.deliver_at is 17, not an RFC 3339 time as a string`,
		`{"deliver_at": "2026-12-01T20:00:00"}`:  `is not an RFC 3339 time with an offset`,
		`{"deliver_at": "2026-02-30T20:00:00Z"}`: `is not a valid time`,
	} {
		_, ok, err := DeliverAt([]byte(meta))
		assert.False(t, ok, meta)
		if assert.Error(t, err, meta) {
			assert.Contains(t, err.Error(), says, meta)
		}
	}
}

// What the check costs the dispatcher per event: metadata without
// deliver_at (nearly every event) pays one byte scan.
func BenchmarkDeliverAt(b *testing.B) {
	for _, bc := range []struct{ name, meta string }{
		{"none", `{"trigger": "insert", "published_by": "6f0c1a52-0000-4000-8000-000000000001"}`},
		{"delayed", `{"trigger": "insert", "deliver_at": "2026-12-01T20:00:00Z"}`},
	} {
		meta := []byte(bc.meta)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _, _ = DeliverAt(meta)
			}
		})
	}
}
