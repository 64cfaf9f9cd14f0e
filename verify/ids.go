package verify

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/replay"
)

// uuid is an event id as its 16 bytes: a map key a third the size of its
// text, and one whatever the case of the hex digits.
type uuid [16]byte

// parseUUID reads an id in its usual text form (event.ValidID).
func parseUUID(s string) (uuid, bool) {
	var id uuid
	if !event.ValidID(s) {
		return id, false
	}
	var digits [32]byte
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '-' {
			digits[n] = s[i]
			n++
		}
	}
	_, err := hex.Decode(id[:], digits[:])
	return id, err == nil
}

// String is the id in the form Postgres prints a uuid.
func (id uuid) String() string {
	var b [36]byte
	hex.Encode(b[0:8], id[0:4])
	hex.Encode(b[9:13], id[4:6])
	hex.Encode(b[14:18], id[6:8])
	hex.Encode(b[19:23], id[8:10])
	hex.Encode(b[24:36], id[10:16])
	b[8], b[13], b[18], b[23] = '-', '-', '-', '-'
	return string(b[:])
}

// eventID returns the event a Nats-Msg-Id names: the event id itself (the
// relay, a redrive, a repair) or the event id before replay.MsgIDMarker and
// a token (eventbus replay). Any other form names no event: another
// producer's ids, a dead letter's <id>:failed:<n> (which lives in another
// stream anyway), no header at all.
func eventID(msgID string) (uuid, bool) {
	const n = len("6f0c1a52-0000-4000-8000-000000000001")
	if len(msgID) > n {
		token, ok := strings.CutPrefix(msgID[n:], replay.MsgIDMarker)
		if !ok || token == "" {
			return uuid{}, false
		}
		msgID = msgID[:n]
	}
	return parseUUID(msgID)
}

// idSet holds the processed events of the window: each id with when it was
// created (Unix microseconds, Postgres's precision), or found once a stream
// message carried the id. It is a slice, 24 bytes an event (a map of the
// same takes 56), sorted by bucket then id, with the start of each bucket
// in an index: a lookup searches about n/65536 entries that sit together.
//
// Fill it with add, then seal it once; then see and missing.
type idSet struct {
	entries []entry
	start   []int32 // entries[start[b]:start[b+1]] are bucket b's
	left    int     // ids no message carried yet
}

type entry struct {
	id      uuid
	created int64
}

// found replaces the creation time of an id a message carried.
const found = math.MinInt64

// bucket is the last two bytes of an id: random in the UUIDs in use (all of
// a v4, the part after the timestamp of a v7), so buckets share ids evenly.
func bucket(id uuid) int { return int(id[14])<<8 | int(id[15]) }

const buckets = 1 << 16

func byBucket(a, b entry) int {
	return cmp.Or(cmp.Compare(bucket(a.id), bucket(b.id)), bytes.Compare(a.id[:], b.id[:]))
}

// newIDSet returns a set with room for size ids.
func newIDSet(size int) *idSet { return &idSet{entries: make([]entry, 0, size)} }

// add adds an id.
func (s *idSet) add(id uuid, createdAt time.Time) {
	s.entries = append(s.entries, entry{id, createdAt.UnixMicro()})
}

// seal sorts the ids for see, dropping an id added twice.
func (s *idSet) seal() {
	slices.SortFunc(s.entries, byBucket)
	s.entries = slices.CompactFunc(s.entries, func(a, b entry) bool { return a.id == b.id })
	s.left = len(s.entries)
	s.start = make([]int32, buckets+1)
	for _, e := range s.entries {
		s.start[bucket(e.id)+1]++
	}
	for b := 1; b <= buckets; b++ {
		s.start[b] += s.start[b-1]
	}
}

// see marks id found and reports whether it is an event of the window
// (found before or not).
func (s *idSet) see(id uuid) bool {
	b := bucket(id)
	in := s.entries[s.start[b]:s.start[b+1]] // sorted by id
	i, ok := slices.BinarySearchFunc(in, id, func(e entry, id uuid) int { return bytes.Compare(e.id[:], id[:]) })
	if ok && in[i].created != found {
		in[i].created = found
		s.left--
	}
	return ok
}

// missing returns the ids no message carried, oldest first (created_at,
// then id, the order of outbox.Filter): reading them back in chunks of
// this order reads them in that order overall.
func (s *idSet) missing() []uuid {
	var left []entry
	for _, e := range s.entries {
		if e.created != found {
			left = append(left, e)
		}
	}
	slices.SortFunc(left, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.created, b.created), bytes.Compare(a.id[:], b.id[:]))
	})
	ids := make([]uuid, len(left))
	for i, e := range left {
		ids[i] = e.id
	}
	return ids
}
