package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// insertAged inserts n rows of status created days ago, bypassing the relay.
func (e *env) insertAged(status string, days, n int) {
	e.t.Helper()
	_, err := e.db.Exec(e.t.Context(), `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, status, created_at)
		SELECT 'old.event', 'test', g::text, $1, now() - make_interval(days => $2)
		FROM generate_series(1, $3) g`, status, days, n)
	require.NoError(e.t, err)
}

func TestPruneDeletesOldProcessedEventsAndRefusesPending(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, s := range []string{"pending", "processing", "processed", "failed"} {
		e.insertAged(s, 40, 25)
		e.insertAged(s, 5, 3)
	}
	all := map[string]int{"pending": 28, "processing": 28, "processed": 28, "failed": 28}
	require.Equal(t, all, e.statusCounts())

	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "--older-than is required"},
		{[]string{"--older-than", "soon"}, "older-than"},
		{[]string{"--older-than", "0s"}, "older-than"},
		{[]string{"--older-than", "30d", "--status", "pending"}, "never pruned"},
		{[]string{"--older-than", "30d", "--status", "processed,processing"}, "never pruned"},
		{[]string{"--older-than", "30d", "--status", "done"}, "--status"},
		{[]string{"--older-than", "30d", "--batch", "0"}, "--batch"},
		{[]string{"--older-than", "30d", "extra"}, "extra"},
	} {
		r := e.cli(append([]string{"prune"}, c.args...)...)
		require.Equal(t, 2, r.code, "prune %v: %s", c.args, r)
		requireOneLine(t, r.stderr, c.want)
		require.Empty(t, r.stdout, "prune %v", c.args)
	}
	require.Equal(t, all, e.statusCounts(), "refused commands delete nothing")

	r := e.cli("prune", "--older-than", "30d", "--dry-run")
	require.Equal(t, 0, r.code, "%s", r)
	require.Contains(t, r.stdout, "would prune 25 events")
	require.Equal(t, all, e.statusCounts(), "a dry run deletes nothing")

	// 25 rows in batches of 10.
	r = e.cli("prune", "--older-than", "30d", "--batch", "10")
	require.Equal(t, 0, r.code, "%s", r)
	require.Contains(t, r.stdout, "pruned 25 events")
	require.Equal(t, map[string]int{"pending": 28, "processing": 28, "processed": 3, "failed": 28}, e.statusCounts())

	r = e.cli("prune", "--older-than", "1d12h", "--status", "failed", "--status", "processed", "--batch", "7")
	require.Equal(t, 0, r.code, "%s", r)
	require.Contains(t, r.stdout, "pruned 31 events")
	require.Equal(t, map[string]int{"pending": 28, "processing": 28}, e.statusCounts(), "pending rows are never pruned")

	r = e.cli("prune", "--older-than", "720h")
	require.Equal(t, 0, r.code, "%s", r)
	require.Contains(t, r.stdout, "pruned 0 events")
}

// currentLSN is the server's WAL flush position.
func (e *env) currentLSN() string {
	e.t.Helper()
	var lsn string
	require.NoError(e.t, e.db.QueryRow(e.t.Context(), `SELECT pg_current_wal_lsn()::text`).Scan(&lsn))
	return lsn
}

func TestSlotAdvanceSkipsEventsBeforeThePosition(t *testing.T) {
	t.Parallel()
	// The relay's own redrive of stuck rows would deliver the skipped events.
	e := setup(t, withEnv("EVENTBUS_REDRIVE_INTERVAL=0"))
	ctx := t.Context()
	relay := e.startRelay()
	warm := e.warmUp()
	require.Zero(t, relay.stop(), "exit code after SIGTERM")
	e.waitSlotActive(false)

	var skipped []string
	for i := range 5 {
		skipped = append(skipped, e.publish(ctx, "poison.range", fmt.Sprintf("s-%d", i), `{}`))
	}
	lsn := e.currentLSN()

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"slot", "advance"}, "--to is required"},
		{[]string{"slot", "advance", "--to", "12345"}, "--to"},
		{[]string{"slot", "advance", "--to", "0/XYZ"}, "--to"},
		{[]string{"slot", "advance", "--to", lsn + "/0"}, "--to"},
		{[]string{"slot", "advance", "--to", lsn + " "}, "--to"},
	} {
		r := e.cli(c.args...)
		require.Equal(t, 2, r.code, "%v: %s", c.args, r)
		requireOneLine(t, r.stderr, c.want)
	}
	r := e.cli("slot", "advance", "--to", "0/1")
	require.Equal(t, 0, r.code, "a slot already past the position: %s", r)
	require.Contains(t, r.stdout, "nothing to skip")

	r = e.cli("slot", "advance", "--to", lsn)
	require.Equal(t, 0, r.code, "%s", r)
	t.Logf("slot advance --to %s: %s", lsn, r.stdout)
	assert.Contains(t, r.stdout, "to "+lsn)
	assert.Contains(t, r.stdout, "skipped")
	assert.Contains(t, r.stdout, "process_pending_events")
	var confirmed string
	var reached bool
	require.NoError(t, e.db.QueryRow(ctx, `SELECT confirmed_flush_lsn::text, confirmed_flush_lsn >= $2::pg_lsn
		FROM pg_replication_slots WHERE slot_name = $1`, e.slot, lsn).Scan(&confirmed, &reached))
	require.True(t, reached, "the slot is at %s, want %s", confirmed, lsn)

	var delivered []string
	for i := range 3 {
		delivered = append(delivered, e.publish(ctx, "after.advance", fmt.Sprintf("d-%d", i), `{}`))
	}
	e.startRelay()
	// Commit order: once the events after the position are processed, the
	// skipped ones would have been too, had the relay streamed them.
	want := map[string]int{"processed": 1 + len(delivered), "pending": len(skipped)}
	eventually(t, 60*time.Second, func() (bool, string) {
		c := e.statusCounts()
		return fmt.Sprint(c) == fmt.Sprint(want), fmt.Sprintf("statuses %v, want %v; %s", c, want, e.diagnose())
	})
	var got []string
	for _, m := range e.streamMessages() {
		got = append(got, m.Body.ID)
	}
	require.ElementsMatch(t, append([]string{warm}, delivered...), got, "the stream holds the events after the position only")

	// As the warning says: process_pending_events hands the skipped rows back
	// once they are older than its 5 seconds.
	eventually(t, 30*time.Second, func() (bool, string) {
		var n int
		require.NoError(t, e.db.QueryRow(ctx, `SELECT count(*) FROM public.event_bus
			WHERE id = ANY($1::uuid[]) AND created_at < now() - interval '5 seconds'`, skipped).Scan(&n))
		return n == len(skipped), fmt.Sprintf("%d of %d skipped events older than 5s", n, len(skipped))
	})
	var redriven int
	require.NoError(t, e.db.QueryRow(ctx, `SELECT public.process_pending_events(100)`).Scan(&redriven))
	require.Equal(t, len(skipped), redriven)
	e.requireDeliveredOnce(slices.Concat([]string{warm}, skipped, delivered), 60*time.Second)
}

func TestSlotAdvanceWhileTheRelayRunsNeedsForce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	relay := e.startRelay()
	ids := []string{e.warmUp()}
	lsn := e.currentLSN()

	r := e.cli("slot", "advance", "--to", lsn)
	require.Equal(t, 1, r.code, "slot advance while the relay streams: %s", r)
	requireOneLine(t, r.stderr, "--force")
	ids = append(ids, e.publish(ctx, "after.refusal", "r-1", `{}`))
	e.waitProcessed(2, 30*time.Second)

	lsn = e.currentLSN()
	r = e.cli("slot", "advance", "--to", lsn, "--force")
	require.Equal(t, 0, r.code, "slot advance --force while the relay streams: %s", r)
	t.Logf("slot advance --to %s --force: %s", lsn, strings.TrimSpace(r.stdout))
	require.Contains(t, r.stdout, e.slot)

	ids = append(ids, e.publish(ctx, "after.advance", "r-2", `{}`))
	e.requireDeliveredOnce(ids, 60*time.Second)
	relay.requireRunning()
	e.waitSlotActive(true)
}
