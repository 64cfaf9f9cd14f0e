package outbox

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/event"
)

func TestPublishThroughATransactionAndTheStore(t *testing.T) {
	t.Parallel()
	store, pool := newStore(t)
	var id string
	require.NoError(t, pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		var err error
		id, err = Publish(t.Context(), tx, "note.added", "note", "n-1", nil, []byte(`{"source": "test"}`), orgA)
		return err
	}))
	e, err := GetEvent(t.Context(), pool, id)
	require.NoError(t, err)
	assert.Equal(t, "note.added", e.EventType)
	assert.Equal(t, orgA, e.OrganizationID)
	assert.JSONEq(t, `{}`, string(e.Payload), "nil payload: NULL, stored as {}")
	assert.JSONEq(t, `{"source": "test"}`, string(e.Metadata))
	assert.Equal(t, event.StatusPending, e.Status)

	id, err = store.Publish(t.Context(), "note.added", "note", "n-2", []byte(`{"n": 2}`), []byte(`{}`), "")
	require.NoError(t, err)
	e, err = GetEvent(t.Context(), pool, id)
	require.NoError(t, err)
	assert.Empty(t, e.OrganizationID)
	assert.JSONEq(t, `{"n": 2}`, string(e.Payload))

	_, err = store.Publish(t.Context(), "note added", "note", "n-3", []byte(`{}`), []byte(`{}`), "")
	require.Error(t, err, "publish_event validates the event type")
	assert.Contains(t, err.Error(), "publish_event: ")
}

func TestProcessPendingHandsBackFailedEvents(t *testing.T) {
	t.Parallel()
	_, pool := newStore(t)
	failed := insertEvent(t, pool, orgA, event.StatusFailed, "lead.created", "l-1", time.Now().Add(-time.Minute))
	insertEvent(t, pool, orgA, event.StatusProcessed, "lead.created", "l-2", time.Now().Add(-time.Minute))

	n, err := ProcessPending(t.Context(), pool, 10)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	e, err := GetEvent(t.Context(), pool, failed)
	require.NoError(t, err)
	assert.Equal(t, event.StatusPending, e.Status)
}
