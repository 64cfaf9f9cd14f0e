package webhook

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestMatchType(t *testing.T) {
	for _, c := range []struct {
		pattern, eventType string
		want               bool
	}{
		{"lead.created", "lead.created", true},
		{"lead.created", "lead.status_updated", false},
		{"lead.*", "lead.created", true},
		{"lead.*", "lead.status.updated", false},
		{"lead.*", "lead", false},
		{"lead.>", "lead.created", true},
		{"lead.>", "lead.status.updated", true},
		{"lead.>", "lead", false},
		{">", "lead.created", true},
		{"*.created", "lead.created", true},
		{"*.created", "deal.created", true},
		{"*.created", "lead.updated", false},
		{"lead", "lead.created", false},
	} {
		assert.Equal(t, c.want, MatchType(c.pattern, c.eventType), "%s vs %s", c.pattern, c.eventType)
	}
}

func TestEndpointMatchesOrganizationAndTypes(t *testing.T) {
	const orgA, orgB = "aaaaaaaa-0000-4000-8000-00000000000a", "bbbbbbbb-0000-4000-8000-00000000000b"
	forA := &Endpoint{OrganizationID: orgA, EventTypes: []string{"lead.*"}, Enabled: true}
	assert.True(t, forA.matches(orgA, "lead.created"))
	assert.False(t, forA.matches(orgB, "lead.created"), "another organization's event")
	assert.False(t, forA.matches("", "lead.created"), "an event of no organization")
	assert.False(t, forA.matches(orgA, "deal.created"))
	all := &Endpoint{Enabled: true}
	assert.True(t, all.matches(orgB, "anything.at.all"), "no organization, no patterns: everything")
	off := &Endpoint{Enabled: false}
	assert.False(t, off.matches(orgA, "lead.created"))
}

func TestValidPattern(t *testing.T) {
	for _, p := range []string{"lead.created", "lead.*", "lead.>", ">", "*", "a-b.c_d"} {
		assert.True(t, ValidPattern(p), p)
	}
	for _, p := range []string{"", "lead.", ".lead", "lead.>.x", "lead..created", "lead created", "lead.c*"} {
		assert.False(t, ValidPattern(p), p)
	}
}

func TestRetryWaitDoublesWithJitterAndACap(t *testing.T) {
	base := 5 * time.Second
	for n, want := range map[int]time.Duration{1: 5 * time.Second, 2: 10 * time.Second, 3: 20 * time.Second, 5: 80 * time.Second, 40: maxRetryWait} {
		for range 50 {
			w := retryWait(base, n)
			assert.GreaterOrEqual(t, w, want*8/10, "attempt %d", n)
			assert.LessOrEqual(t, w, want*12/10, "attempt %d", n)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	assert.Equal(t, 120*time.Second, parseRetryAfter("120", now))
	assert.Equal(t, 30*time.Second, parseRetryAfter("Tue, 01 Dec 2026 12:00:30 GMT", now))
	assert.Zero(t, parseRetryAfter("", now))
	assert.Zero(t, parseRetryAfter("soon", now))
	assert.Zero(t, parseRetryAfter("Tue, 01 Dec 2026 11:00:00 GMT", now), "a date in the past")
}

func TestEventIDOf(t *testing.T) {
	assert.Equal(t, "0b9d2a3e-7c55-4c1e-9d5e-6c1f2f7d8a90", eventIDOf([]byte(`{"id":"0b9d2a3e-7c55-4c1e-9d5e-6c1f2f7d8a90","event_type":"x"}`)))
	assert.Empty(t, eventIDOf([]byte(`{"event_type":"x"}`)))
	assert.Empty(t, eventIDOf([]byte(`{"id":"short"}`)))
}
