package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStatusUpdatesOfOneLeadArriveInCommitOrder(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	e.startRelay()

	var leadID, status string
	require.NoError(t, e.db.QueryRow(ctx, `INSERT INTO public.leads (first_name, last_name, status_id, organization_id)
		VALUES ('Ann', 'Order', gen_random_uuid(), gen_random_uuid()) RETURNING id::text, status_id::text`).Scan(&leadID, &status))
	const updates = 200
	written := make([]string, 0, updates)
	for range updates {
		// Each UPDATE is a transaction of its own.
		require.NoError(t, e.db.QueryRow(ctx, `UPDATE public.leads SET status_id = gen_random_uuid() WHERE id = $1 RETURNING status_id::text`, leadID).Scan(&status))
		written = append(written, status)
	}
	e.waitProcessed(1+updates, 60*time.Second)

	var prev string
	var got []string
	for _, m := range e.streamMessages() {
		var p struct {
			LeadID      string `json:"lead_id"`
			StatusID    string `json:"status_id"`
			OldStatusID string `json:"old_status_id"`
			NewStatusID string `json:"new_status_id"`
		}
		require.NoError(t, json.Unmarshal(m.Body.Payload, &p))
		require.Equal(t, leadID, p.LeadID)
		switch m.Subject {
		case "events.lead.created":
			require.Empty(t, got, "lead.created comes first")
			prev = p.StatusID
		case "events.lead.status_updated":
			require.Equal(t, prev, p.OldStatusID, "message %d: old_status_id is the previous message's new_status_id", len(got))
			prev = p.NewStatusID
			got = append(got, p.NewStatusID)
		default:
			t.Fatalf("unexpected subject %s", m.Subject)
		}
	}
	require.Equal(t, written, got, "new_status_id in the order the updates committed")
}

// commitLSN parses the Eventbus-Commit-Lsn header of m (0 when absent).
func commitLSN(t *testing.T, m message) uint64 {
	t.Helper()
	v := m.Header.Get("Eventbus-Commit-Lsn")
	if v == "" {
		return 0
	}
	lsn, err := pglogrepl.ParseLSN(v)
	require.NoError(t, err, "Eventbus-Commit-Lsn %q", v)
	return uint64(lsn)
}

// What README's "Commit order" and docs/consumers.md promise, one claim at a
// time: live events of an aggregate are in commit order with increasing
// commit positions, through a broker outage and a relay restart, although
// created_at can say otherwise; a redriven event comes after the newer ones,
// without a commit position.
func TestPerAggregateOrder(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	relay := e.startRelay()
	e.waitSlotActive(true)

	// T2 begins before T1, T1 commits first: the stream has T1's event
	// first, and T2's created_at is the older.
	tx2, err := e.db.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx2.Rollback(context.Background()) }()
	_, err = tx2.Exec(ctx, `SELECT now()`)
	require.NoError(t, err)
	first := e.publish(ctx, "overlap.changed", "overlap", `{"state":"B"}`)
	var second string
	require.NoError(t, tx2.QueryRow(ctx, `SELECT public.publish_event('overlap.changed', 'test', 'overlap', '{"state":"C"}', '{}', NULL)::text`).Scan(&second))
	require.NoError(t, tx2.Commit(ctx))

	// A burst of four aggregates through a broker outage and a relay kill.
	var (
		writers sync.WaitGroup
		mu      sync.Mutex
		ids     []string
	)
	for a := range 4 {
		writers.Go(func() {
			for seq := 1; seq <= 150; seq++ {
				var id string
				err := e.db.QueryRow(ctx, `SELECT public.publish_event('burst.created', 'test', $1, jsonb_build_object('seq', $2::int), '{}', NULL)::text`,
					fmt.Sprintf("agg-%d", a), seq).Scan(&id)
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
		})
	}
	eventually(t, time.Minute, func() (bool, string) {
		c := e.statusCounts()
		return c["processed"] >= 100, fmt.Sprintf("statuses %v", c)
	})
	e.nats.Shutdown()
	eventually(t, time.Minute, func() (bool, string) {
		var n int
		require.NoError(t, e.db.QueryRow(ctx, `SELECT count(*) FROM public.event_bus`).Scan(&n))
		return n >= 400, fmt.Sprintf("%d rows written", n)
	})
	require.NoError(t, e.nats.Restart())
	relay.kill()
	e.startRelay()
	writers.Wait()

	// A failed event handed back after a newer event of its aggregate.
	var old string
	require.NoError(t, e.db.QueryRow(ctx, `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, payload, status, retry_count, error_message)
		VALUES ('redrive.changed', 'test', 'redriven', '{"n":1}', 'failed', 1, 'an earlier failure') RETURNING id::text`).Scan(&old))
	newer := e.publish(ctx, "redrive.changed", "redriven", `{"n":2}`)
	e.waitProcessed(len(ids)+3, 2*time.Minute)
	var handed int
	require.NoError(t, e.db.QueryRow(ctx, `SELECT public.process_pending_events(10)`).Scan(&handed))
	require.Equal(t, 1, handed)
	e.waitProcessed(len(ids)+4, time.Minute)

	msgs := e.streamMessages()
	pos := map[string]int{}
	byID := map[string]message{}
	for i, m := range msgs {
		_, dup := pos[m.Body.ID]
		require.False(t, dup, "event %s is in the stream twice", m.Body.ID)
		pos[m.Body.ID] = i
		byID[m.Body.ID] = m
	}

	require.Less(t, pos[first], pos[second], "the transaction that committed first is first in the stream")
	assert.Less(t, byID[second].Body.CreatedAt, byID[first].Body.CreatedAt, "created_at says the opposite: it is the start of the transaction")
	assert.Less(t, commitLSN(t, byID[first]), commitLSN(t, byID[second]), "commit positions follow the stream")

	lastSeq, lastLSN := map[string]int{}, map[string]uint64{}
	for _, m := range msgs {
		if m.Subject != "events.burst.created" {
			continue
		}
		var p struct{ Seq int }
		require.NoError(t, json.Unmarshal(m.Body.Payload, &p))
		agg := m.Body.AggregateID
		lsn := commitLSN(t, m)
		require.NotZero(t, lsn, "a live event carries its commit position")
		require.Greater(t, p.Seq, lastSeq[agg], "aggregate %s: seq %d after %d", agg, p.Seq, lastSeq[agg])
		require.Greater(t, lsn, lastLSN[agg], "aggregate %s: commit positions increase", agg)
		lastSeq[agg], lastLSN[agg] = p.Seq, lsn
	}
	require.Len(t, lastSeq, 4, "four aggregates")

	require.Less(t, pos[newer], pos[old], "the redriven event comes after the newer one")
	assert.NotZero(t, commitLSN(t, byID[newer]))
	assert.Zero(t, commitLSN(t, byID[old]), "a redriven event has no commit position")
}
