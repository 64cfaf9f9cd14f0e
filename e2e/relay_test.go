package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLeadTriggersDeliverSeedPayloads(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.startRelay()
	ctx := t.Context()

	const org = "11111111-1111-1111-1111-111111111111"
	const status1 = "22222222-2222-2222-2222-222222222222"
	const status2 = "33333333-3333-3333-3333-333333333333"
	const source = "44444444-4444-4444-4444-444444444444"
	var leadID string
	require.NoError(t, e.db.QueryRow(ctx, `INSERT INTO public.leads (first_name, last_name, phone, status_id, lead_source_id, organization_id)
		VALUES ('John', 'Doe', '+79991234567', $1, $2, $3) RETURNING id::text`, status1, source, org).Scan(&leadID))
	_, err := e.db.Exec(ctx, `UPDATE public.leads SET status_id = $1 WHERE id = $2`, status2, leadID)
	require.NoError(t, err)
	_, err = e.db.Exec(ctx, `UPDATE public.leads SET phone = '+70000000000' WHERE id = $1`, leadID)
	require.NoError(t, err)
	marker := e.publish(ctx, "test.marker", "m", `{}`)

	e.waitProcessed(3, 30*time.Second)
	msgs := e.streamMessages()
	require.Len(t, msgs, 3, "lead.created, lead.status_updated, marker; the phone update publishes nothing")

	created := msgs[0]
	assert.Equal(t, "events.lead.created", created.Subject)
	assert.Equal(t, "lead.created", created.Header.Get("Eventbus-Event-Type"))
	assert.Equal(t, "lead", created.Header.Get("Eventbus-Aggregate-Type"))
	assert.Equal(t, leadID, created.Header.Get("Eventbus-Aggregate-Id"))
	assert.Equal(t, org, created.Header.Get("Eventbus-Organization-Id"))
	assert.Equal(t, created.Body.ID, created.Header.Get("Nats-Msg-Id"))
	assert.JSONEq(t, `{"lead_id":"`+leadID+`","first_name":"John","last_name":"Doe","phone":"+79991234567",
		"status_id":"`+status1+`","lead_source_id":"`+source+`","organization_id":"`+org+`"}`, string(created.Body.Payload))
	assert.JSONEq(t, `{"trigger":"insert"}`, string(created.Body.Metadata))
	require.NotNil(t, created.Body.OrganizationID)
	assert.Equal(t, org, *created.Body.OrganizationID)
	_, err = time.Parse(time.RFC3339Nano, created.Body.CreatedAt)
	assert.NoError(t, err, "created_at is RFC 3339")

	updated := msgs[1]
	assert.Equal(t, "events.lead.status_updated", updated.Subject)
	assert.JSONEq(t, `{"lead_id":"`+leadID+`","first_name":"John","last_name":"Doe",
		"old_status_id":"`+status1+`","new_status_id":"`+status2+`","organization_id":"`+org+`"}`, string(updated.Body.Payload))
	assert.JSONEq(t, `{"trigger":"update"}`, string(updated.Body.Metadata))

	assert.Equal(t, marker, msgs[2].Body.ID)
}

func TestPublishEventIsDeliveredAndMarkedProcessed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.startRelay()
	ctx := t.Context()

	id := e.publish(ctx, "payment.completed", "pay-1", `{"amount":100,"currency":"RUB","nested":{"a":[1,2,3]}}`)
	e.waitProcessed(1, 30*time.Second)

	var status string
	var processedAt *time.Time
	require.NoError(t, e.db.QueryRow(ctx, `SELECT status, processed_at FROM public.event_bus WHERE id = $1`, id).Scan(&status, &processedAt))
	assert.Equal(t, "processed", status)
	require.NotNil(t, processedAt, "processed_at is set")

	msgs := e.streamMessages()
	require.Len(t, msgs, 1)
	m := msgs[0]
	assert.Equal(t, "events.payment.completed", m.Subject)
	assert.Equal(t, id, m.Body.ID)
	assert.Equal(t, id, m.Header.Get("Nats-Msg-Id"))
	assert.Empty(t, m.Header.Values("Eventbus-Organization-Id"), "absent when organization_id is null")
	assert.Nil(t, m.Body.OrganizationID)
	assert.JSONEq(t, `{"amount":100,"currency":"RUB","nested":{"a":[1,2,3]}}`, string(m.Body.Payload))
	assert.JSONEq(t, `{"source":"e2e"}`, string(m.Body.Metadata))

	var keys map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(m.Raw, &keys))
	assert.ElementsMatch(t, []string{"id", "event_type", "aggregate_type", "aggregate_id", "organization_id", "payload", "metadata", "created_at"},
		mapKeys(keys), "body keys as in CONTRACT.md")
}

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}
