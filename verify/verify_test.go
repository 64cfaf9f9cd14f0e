package verify

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const id1 = "6f0c1a52-0000-4000-8000-000000000001"

func TestEventIDFromNatsMsgID(t *testing.T) {
	want, ok := parseUUID(id1)
	require.True(t, ok)
	require.Equal(t, id1, want.String())

	for _, msgID := range []string{
		id1,                           // the relay, a redrive, a repair
		strings.ToUpper(id1),          // the same id, whatever the case
		id1 + ":replay:0a1b2c3d",      // eventbus replay
		id1 + ":replay:any-token-too", // the token is opaque
	} {
		got, ok := eventID(msgID)
		if assert.True(t, ok, msgID) {
			assert.Equal(t, want, got, msgID)
		}
	}
	for _, msgID := range []string{
		"",                // no header
		id1 + ":failed:5", // a dead letter: not the event
		id1 + ":replay:",  // no token
		id1 + ":replay",   // no separator
		id1 + "x",         // longer than an id
		id1[:35],          // shorter
		"order-42",        // another producer's id
		"6f0c1a52x0000-4000-8000-000000000001",
		"{6f0c1a52-0000-4000-8000-000000000001}",
		"6f0c1a52-0000-4000-8000-00000000000g:replay:0a1b2c3d",
	} {
		_, ok := eventID(msgID)
		assert.False(t, ok, msgID)
	}
}

func TestIDSetFindsWhatNoMessageCarried(t *testing.T) {
	base := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	id := func(n int) uuid {
		u, ok := parseUUID(fmt.Sprintf("6f0c1a52-0000-4000-8000-%012d", n))
		require.True(t, ok)
		return u
	}
	s := newIDSet(4)
	s.add(id(4), base.Add(2*time.Second))
	s.add(id(3), base.Add(time.Second))
	s.add(id(2), base.Add(time.Second)) // same created_at as 3: id decides
	s.add(id(1), base.Add(3*time.Second))
	s.add(id(1), base.Add(3*time.Second)) // read twice, counted once
	s.seal()
	require.Equal(t, 4, s.left)

	assert.True(t, s.see(id(4)))
	assert.True(t, s.see(id(4)), "a second copy is an event of the window")
	assert.False(t, s.see(id(9)), "not an event of the window")
	assert.Equal(t, 3, s.left)
	assert.Equal(t, []uuid{id(2), id(3), id(1)}, s.missing(), "oldest first, then by id")

	for _, n := range []int{1, 2, 3} {
		s.see(id(n))
	}
	assert.Zero(t, s.left)
	assert.Empty(t, s.missing())
}

func TestPlanWindow(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	since := now.Add(-2 * time.Hour)
	until := now.Add(-time.Hour)
	for name, c := range map[string]struct {
		since, until time.Time
		maxAge       time.Duration
		wantSince    time.Time
		wantUntil    time.Time
		note         bool
	}{
		"defaults":                  {wantSince: now.Add(-DefaultWindow), wantUntil: now},
		"given":                     {since: since, until: until, wantSince: since, wantUntil: until},
		"since only":                {since: since, wantSince: since, wantUntil: now},
		"until only":                {until: until, wantSince: until.Add(-DefaultWindow), wantUntil: until},
		"inside max_age":            {since: since, maxAge: 3 * time.Hour, wantSince: since, wantUntil: now},
		"older than max_age":        {since: now.Add(-48 * time.Hour), maxAge: 7 * time.Hour, wantSince: now.Add(-7*time.Hour + Margin), wantUntil: now, note: true},
		"default older than maxage": {maxAge: time.Hour, wantSince: now.Add(-time.Hour + Margin), wantUntil: now, note: true},
		"all retained away":         {since: since, until: until, maxAge: 30 * time.Minute, wantSince: now.Add(-30*time.Minute + Margin), wantUntil: now.Add(-30*time.Minute + Margin), note: true},
	} {
		w := plan(c.since, c.until, now, c.maxAge)
		assert.Equal(t, c.wantSince, w.since, "%s: since", name)
		assert.Equal(t, c.wantUntil, w.until, "%s: until", name)
		assert.Equal(t, w.since.Add(-Margin), w.streamFrom, "%s: the stream is read from Margin before the window", name)
		assert.Equal(t, c.note, len(w.notes) == 1, "%s: notes %q", name, w.notes)
		assert.Equal(t, name == "all retained away", w.empty(), "%s: empty", name)
	}
}

// BenchmarkIDSet measures what the set costs a processed event of the
// window, in memory and in time to look up one message's id, for a million
// events: go test -run '^$' -bench IDSet ./verify
func BenchmarkIDSet(b *testing.B) {
	const n = 1_000_000
	ids := make([]uuid, n)
	for i := range ids {
		ids[i] = uuid{0: byte(i >> 16), 1: byte(i >> 8), 2: byte(i), 14: byte(i * 7919 >> 8), 15: byte(i * 7919)}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := newIDSet(n)
	for _, id := range ids {
		s.add(id, time.Now())
	}
	s.seal()
	runtime.GC()
	runtime.ReadMemStats(&after)
	i := 0
	for b.Loop() {
		s.see(ids[i%n])
		i++
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/id")
}
