package schedule

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func mustParse(t *testing.T, expr, tz string) Spec {
	t.Helper()
	s, err := Parse(expr, tz)
	require.NoError(t, err)
	return s
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestParseRefusesWhatIsNotFiveFieldsInAZone(t *testing.T) {
	for _, c := range []struct{ expr, tz, says string }{
		{"* * * *", "", "want 5 fields"},
		{"0 * * * * *", "", "want 5 fields"},
		{"@daily", "", "want 5 fields"},
		{"61 * * * *", "", "cron \"61 * * * *\""},
		{"* * * * mon-xyz", "", "cron"},
		{"CRON_TZ=UTC * * * * *", "", "--timezone"},
		{"* * * * *", "Mars/Olympus", `time zone "Mars/Olympus" is not an IANA time zone`},
		{"* * * * *", "Local", `"Local" depends on the machine`},
	} {
		_, err := Parse(c.expr, c.tz)
		if assert.Error(t, err, c.expr) {
			assert.Contains(t, err.Error(), c.says, c.expr)
		}
	}
	for _, c := range []struct{ expr, tz string }{
		{"* * * * *", ""}, {"*/5 9-17 * * mon-fri", "Europe/Berlin"}, {"0 0 1 1 *", "UTC"},
	} {
		_, err := Parse(c.expr, c.tz)
		assert.NoError(t, err, c.expr)
	}
}

func TestNextIsInTheScheduleZone(t *testing.T) {
	s := mustParse(t, "0 9 * * *", "Europe/Berlin")
	// Winter: UTC+1; summer: UTC+2.
	assert.Equal(t, utc("2026-01-15T08:00:00Z"), s.Next(utc("2026-01-15T00:00:00Z")))
	assert.Equal(t, utc("2026-07-15T07:00:00Z"), s.Next(utc("2026-07-15T00:00:00Z")))
	assert.Equal(t, utc("2026-07-15T09:00:00Z"), mustParse(t, "0 9 * * *", "").Next(utc("2026-07-15T00:00:00Z")), "UTC without a zone")
}

// New York springs forward on 2026-03-08 (02:00 EST becomes 03:00 EDT) and
// falls back on 2026-11-01 (02:00 EDT becomes 01:00 EST).
func TestNextAcrossDaylightSavingChanges(t *testing.T) {
	ny := "America/New_York"

	daily := mustParse(t, "0 9 * * *", ny)
	assert.Equal(t, utc("2026-03-07T14:00:00Z"), daily.Next(utc("2026-03-07T00:00:00Z")), "09:00 EST")
	assert.Equal(t, utc("2026-03-08T13:00:00Z"), daily.Next(utc("2026-03-08T00:00:00Z")), "09:00 EDT: the day after the change")
	assert.Equal(t, utc("2026-11-01T14:00:00Z"), daily.Next(utc("2026-11-01T00:00:00Z")), "09:00 EST again")

	// 02:30 does not exist on the spring-forward day: it fires once, at
	// 03:00 EDT, the first instant after the gap.
	gap := mustParse(t, "30 2 * * *", ny)
	assert.Equal(t, utc("2026-03-07T07:30:00Z"), gap.Next(utc("2026-03-07T05:00:00Z")), "02:30 EST the day before")
	first := gap.Next(utc("2026-03-08T05:00:00Z")) // 00:00 EST
	assert.Equal(t, utc("2026-03-08T07:00:00Z"), first, "03:00 EDT")
	assert.Equal(t, utc("2026-03-09T06:30:00Z"), gap.Next(first), "then 02:30 EDT the next day")
	assert.Equal(t, utc("2026-03-09T06:30:00Z"), gap.Next(utc("2026-03-08T07:00:00Z")), "not twice")
	tick, ok := gap.Latest(utc("2026-03-07T07:30:00Z"), utc("2026-03-08T12:00:00Z"))
	require.True(t, ok)
	assert.Equal(t, first, tick, "the gap's tick counts as a missed tick too")
	// A time the gap does not touch is left alone; so is a schedule whose
	// day is not the spring-forward day.
	assert.Equal(t, utc("2026-03-08T06:15:00Z"), mustParse(t, "15 1 * * *", ny).Next(utc("2026-03-08T05:00:00Z")), "01:15 EST")
	assert.Equal(t, utc("2026-03-09T06:30:00Z"), mustParse(t, "30 2 9 3 *", ny).Next(utc("2026-03-08T05:00:00Z")))
	// Berlin springs forward on 2026-03-29 at 02:00 CET.
	assert.Equal(t, utc("2026-03-29T01:00:00Z"), mustParse(t, "15 2 * * *", "Europe/Berlin").Next(utc("2026-03-28T23:00:00Z")), "03:00 CEST")

	// 01:30 happens twice on the fall-back day: it fires once.
	twice := mustParse(t, "30 1 * * *", ny)
	first = twice.Next(utc("2026-11-01T04:00:00Z")) // 00:00 EDT
	assert.Equal(t, utc("2026-11-01T05:30:00Z"), first, "01:30 EDT")
	assert.Equal(t, utc("2026-11-02T06:30:00Z"), twice.Next(first), "not 01:30 EST an hour later: the next day")

	// Hourly ticks are an hour apart in absolute time across both changes.
	hourly := mustParse(t, "0 * * * *", ny)
	for _, from := range []time.Time{utc("2026-03-08T05:30:00Z"), utc("2026-11-01T04:30:00Z")} {
		var ticks []time.Time
		at := from
		for range 4 {
			at = hourly.Next(at)
			ticks = append(ticks, at)
		}
		for i := 1; i < len(ticks); i++ {
			assert.Equal(t, time.Hour, ticks[i].Sub(ticks[i-1]), "hourly around %s: %v", from, ticks)
		}
	}
}

func TestLatestIsTheLastMissedTickOnce(t *testing.T) {
	minutely := mustParse(t, "* * * * *", "")
	now := utc("2026-12-01T20:00:30Z")
	tick, ok := minutely.Latest(utc("2026-12-01T19:00:00Z"), now)
	require.True(t, ok)
	assert.Equal(t, utc("2026-12-01T20:00:00Z"), tick, "an hour missed: the latest tick, once")
	_, ok = minutely.Latest(tick, now)
	assert.False(t, ok, "fired: nothing until the next minute")
	tick, ok = minutely.Latest(time.Time{}, now)
	require.True(t, ok, "never run")
	assert.Equal(t, utc("2026-12-01T20:00:00Z"), tick)

	yearly := mustParse(t, "0 0 1 1 *", "")
	tick, ok = yearly.Latest(utc("2020-06-01T00:00:00Z"), now)
	require.True(t, ok)
	assert.Equal(t, utc("2026-01-01T00:00:00Z"), tick, "years missed: the latest")
	_, ok = yearly.Latest(utc("2026-01-01T00:00:00Z"), now)
	assert.False(t, ok)
	tick, ok = yearly.Latest(utc("2010-06-01T00:00:00Z"), now)
	require.True(t, ok, "beyond every look-back window")
	assert.Equal(t, utc("2026-01-01T00:00:00Z"), tick)
}
