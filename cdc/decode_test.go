package cdc

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/event"
)

// pgoutput message builders (protocol version 1), for decoding tests.

func cstring(b []byte, s string) []byte { return append(append(b, s...), 0) }

func relationMsg(id uint32, namespace, name string, columns ...string) []byte {
	b := []byte{'R'}
	b = binary.BigEndian.AppendUint32(b, id)
	b = cstring(b, namespace)
	b = cstring(b, name)
	b = append(b, 'd')
	b = binary.BigEndian.AppendUint16(b, uint16(len(columns)))
	for _, c := range columns {
		b = append(b, 0)
		b = cstring(b, c)
		b = binary.BigEndian.AppendUint32(b, 25) // text
		b = binary.BigEndian.AppendUint32(b, 0xffffffff)
	}
	return b
}

// insertMsg takes values in the relation's column order; nil is NULL.
func insertMsg(id uint32, values ...*string) []byte {
	b := []byte{'I'}
	b = binary.BigEndian.AppendUint32(b, id)
	b = append(b, 'N')
	b = binary.BigEndian.AppendUint16(b, uint16(len(values)))
	for _, v := range values {
		if v == nil {
			b = append(b, 'n')
			continue
		}
		b = append(b, 't')
		b = binary.BigEndian.AppendUint32(b, uint32(len(*v)))
		b = append(b, *v...)
	}
	return b
}

func str(s string) *string { return &s }

func TestDecodeInsertByColumnName(t *testing.T) {
	d := newDecoder()
	// Columns in an unusual order, plus one the relay does not know.
	_, ok, err := d.decode(relationMsg(42, "public", "event_bus",
		"status", "payload", "id", "extra", "created_at", "event_type", "aggregate_id", "aggregate_type", "organization_id", "metadata"))
	require.NoError(t, err)
	assert.False(t, ok, "a relation message yields no change")

	c, ok, err := d.decode(insertMsg(42,
		str("pending"), str(`{"a": 1}`), str("0b9d2a3e-7c55-4c1e-9d5e-6c1f2f7d8a90"), str("x"),
		str("2026-11-26 15:07:50.123456+00"), str("lead.created"), str("agg-1"), str("lead"), nil, str(`{"trigger": "insert"}`)))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, Insert, c.Kind)
	e := c.Event
	require.NoError(t, e.DecodeErr)
	assert.Equal(t, "0b9d2a3e-7c55-4c1e-9d5e-6c1f2f7d8a90", e.ID)
	assert.Equal(t, "lead.created", e.EventType)
	assert.Equal(t, "lead", e.AggregateType)
	assert.Equal(t, "agg-1", e.AggregateID)
	assert.Equal(t, "pending", e.Status)
	assert.Equal(t, "", e.OrganizationID)
	assert.Equal(t, `{"a": 1}`, string(e.Payload))
	assert.Equal(t, `{"trigger": "insert"}`, string(e.Metadata))
	assert.Equal(t, time.Date(2026, 11, 26, 15, 7, 50, 123456000, time.UTC), e.CreatedAt)
}

func TestDecodeBadRowKeepsID(t *testing.T) {
	d := newDecoder()
	_, _, err := d.decode(relationMsg(7, "public", "event_bus", "id", "event_type", "aggregate_id", "aggregate_type", "created_at"))
	require.NoError(t, err)
	c, ok, err := d.decode(insertMsg(7, str("id-1"), nil, str("a"), str("t"), str("not a time")))
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "id-1", c.Event.ID, "the id survives so the row can be marked failed")
	require.Error(t, c.Event.DecodeErr)
	assert.Contains(t, c.Event.DecodeErr.Error(), "event_type is NULL")
	assert.Contains(t, c.Event.DecodeErr.Error(), "not an ISO timestamp")
}

func TestDecodeIgnoresOtherTables(t *testing.T) {
	d := newDecoder()
	_, _, err := d.decode(relationMsg(8, "public", "leads", "id"))
	require.NoError(t, err)
	_, ok, err := d.decode(insertMsg(8, str("x")))
	require.NoError(t, err)
	assert.False(t, ok)

	_, _, err = d.decode(insertMsg(9, str("x")))
	assert.Error(t, err, "an insert for a relation never described is a protocol error")
}

func TestDecodeTransactionAndRedrive(t *testing.T) {
	d := newDecoder()
	begin := []byte{'B'}
	begin = binary.BigEndian.AppendUint64(begin, 0x16B3748)
	begin = binary.BigEndian.AppendUint64(begin, 0)
	begin = binary.BigEndian.AppendUint32(begin, 777)
	c, ok, err := d.decode(begin)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, Begin, c.Kind)
	assert.Equal(t, pglogrepl.LSN(0x16B3748), c.CommitLSN)

	msg := []byte{'M', 1}
	msg = binary.BigEndian.AppendUint64(msg, 0x16B3700)
	msg = cstring(msg, event.RedrivePrefix)
	const id1, id2, id3 = "6f0c1a52-0000-4000-8000-000000000001", "6f0c1a52-0000-4000-8000-000000000002", "6f0c1a52-0000-4000-8000-000000000003"
	content := id1 + ", " + id2 + ",," + id3
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(content)))
	msg = append(msg, content...)
	c, ok, err = d.decode(msg)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, Redrive, c.Kind)
	assert.Equal(t, []string{id1, id2, id3}, c.IDs)

	other := []byte{'M', 1}
	other = binary.BigEndian.AppendUint64(other, 1)
	other = cstring(other, "someone.else")
	other = binary.BigEndian.AppendUint32(other, 1)
	other = append(other, 'x')
	_, ok, err = d.decode(other)
	require.NoError(t, err)
	assert.False(t, ok, "messages with other prefixes are ignored")

	commit := []byte{'C', 0}
	commit = binary.BigEndian.AppendUint64(commit, 0x16B3748)
	commit = binary.BigEndian.AppendUint64(commit, 0x16B3778)
	commit = binary.BigEndian.AppendUint64(commit, 0)
	c, ok, err = d.decode(commit)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, Commit, c.Kind)
	assert.Equal(t, pglogrepl.LSN(0x16B3778), c.EndLSN, "commit carries the transaction's end LSN")
}

func TestParseTimestamp(t *testing.T) {
	for in, want := range map[string]time.Time{
		"2026-11-26 15:07:50.123456+00": time.Date(2026, 11, 26, 15, 7, 50, 123456000, time.UTC),
		"2026-11-26 15:07:50+00":        time.Date(2026, 11, 26, 15, 7, 50, 0, time.UTC),
		"2026-11-26 18:37:50.5+03:30":   time.Date(2026, 11, 26, 15, 7, 50, 500000000, time.UTC),
		"1900-01-01 00:00:00+02:30:17":  time.Date(1899, 12, 31, 21, 29, 43, 0, time.UTC),
		"2026-11-26 10:07:50.000001-05": time.Date(2026, 11, 26, 15, 7, 50, 1000, time.UTC),
	} {
		got, err := ParseTimestamp(in)
		require.NoError(t, err, in)
		assert.True(t, want.Equal(got), "%s: got %s want %s", in, got, want)
	}
	for _, in := range []string{"infinity", "2026-02-30 10:00:00+00", "2026-13-01 10:00:00+00", "2026-11-26 24:00:00+00", "2026-11-26 15:07:50.+00", "2026-11-26T15:07:50+00", "2026-11-26 15:07:5x+00"} {
		_, err := ParseTimestamp(in)
		assert.Error(t, err, in)
	}
}

// TestParseTimestampFastPathAgreesWithTimeParse checks the UTC fast path
// against time.Parse on the layouts, over times from year 1 to 9999 with
// every fraction length PostgreSQL prints.
func TestParseTimestampFastPathAgreesWithTimeParse(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		ts := time.Unix(r.Int64N(253402300799+62135596800)-62135596800, r.Int64N(1e6)*1000).UTC()
		in := ts.Format("2006-01-02 15:04:05.999999") + "+00"
		fast, ok := parseUTCTimestamp(in)
		require.True(t, ok, in)
		slow, err := time.Parse(timestampLayouts[0], in)
		require.NoError(t, err, in)
		require.True(t, slow.Equal(fast), "%s: fast %s, time.Parse %s", in, fast, slow)
	}
}

func BenchmarkParseTimestamp(b *testing.B) {
	for b.Loop() {
		if _, err := ParseTimestamp("2026-11-26 15:07:50.123456+00"); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(relationMsg(1, "public", "event_bus", "id", "event_type"))
	f.Add(insertMsg(1, str("a"), nil))
	f.Add([]byte{'B', 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		d := newDecoder()
		_, _, _ = d.decode(relationMsg(1, "public", "event_bus", "id", "event_type", "created_at"))
		_, _, _ = d.decode(data) // must not panic
	})
}

func BenchmarkDecodeInsert(b *testing.B) {
	d := newDecoder()
	_, _, _ = d.decode(relationMsg(42, "public", "event_bus",
		"id", "event_type", "aggregate_type", "aggregate_id", "payload", "metadata", "organization_id", "status", "created_at", "processed_at", "retry_count", "error_message"))
	msg := insertMsg(42, str("0b9d2a3e-7c55-4c1e-9d5e-6c1f2f7d8a90"), str("lead.created"), str("lead"), str("agg-1"),
		str(`{"lead_id": "5f1c7a52", "phone": "+79991234567"}`), str(`{"trigger": "insert"}`), str("11111111-1111-1111-1111-111111111111"),
		str("pending"), str("2026-11-26 15:07:50.123456+00"), nil, str("0"), nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := d.decode(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSplitIDsKeepsOnlyEventIDs(t *testing.T) {
	ids, invalid := splitIDs(" 6f0c1a52-0000-4000-8000-000000000001,not-a-uuid,,' OR true --,6F0C1A52-0000-4000-8000-00000000000A ")
	assert.Equal(t, []string{"6f0c1a52-0000-4000-8000-000000000001", "6F0C1A52-0000-4000-8000-00000000000A"}, ids)
	assert.Equal(t, []string{"not-a-uuid", "' OR true --"}, invalid)
}

func TestDecodeTruncatedInsertIsAnError(t *testing.T) {
	d := newDecoder()
	_, _, err := d.decode(relationMsg(42, "public", "event_bus", "id", "event_type", "aggregate_type", "aggregate_id"))
	require.NoError(t, err)
	full := insertMsg(42, str("0b9d2a3e-7c55-4c1e-9d5e-6c1f2f7d8a90"), str("lead.created"), str("lead"), str("agg-1"))
	for n := 1; n < len(full); n++ {
		_, ok, err := d.decode(full[:n])
		assert.Error(t, err, "insert cut to %d of %d bytes", n, len(full))
		assert.False(t, ok)
	}
	c, ok, err := d.decode(full)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "agg-1", c.Event.AggregateID)
}
