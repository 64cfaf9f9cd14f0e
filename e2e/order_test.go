package e2e

import (
	"encoding/json"
	"testing"
	"time"

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
