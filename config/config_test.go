package config

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// unsetAll unsets every EVENTBUS_ variable for the test, so the machine's
// environment cannot leak in; t.Setenv restores them afterwards.
func unsetAll(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, Prefix+"_") {
			t.Setenv(name, "")
			require.NoError(t, os.Unsetenv(name))
		}
	}
}

func TestDefaultsAreTheContract(t *testing.T) {
	t.Setenv("EVENTBUS_SLOT", "from_the_machine")
	unsetAll(t)
	c, err := Load()
	require.NoError(t, err)
	assert.Equal(t, "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", c.DatabaseURL)
	assert.Equal(t, "nats://127.0.0.1:4222", c.NATSURL)
	assert.Equal(t, "eventbus", c.Slot)
	assert.Equal(t, "eventbus", c.Publication)
	assert.Equal(t, "EVENTBUS", c.Stream)
	assert.Equal(t, "events", c.SubjectPrefix)
	assert.Equal(t, 5, c.MaxRetries)
	assert.Equal(t, "127.0.0.1:8080", c.HTTPAddr)
	assert.Equal(t, 30*time.Second, c.HeartbeatInterval)
}

func TestEmptyHTTPAddrDisables(t *testing.T) {
	unsetAll(t)
	t.Setenv("EVENTBUS_HTTP_ADDR", "")
	c, err := Load()
	require.NoError(t, err)
	assert.Empty(t, c.HTTPAddr)
}

func TestBadValuesNameTheVariable(t *testing.T) {
	for variable, value := range map[string]string{
		"EVENTBUS_MAX_RETRIES":           "abc",
		"EVENTBUS_PUBLISH_WINDOW":        "0",
		"EVENTBUS_DATABASE_URL":          "postgres://host:notaport/db",
		"EVENTBUS_NATS_URL":              "http://127.0.0.1:4222",
		"EVENTBUS_SLOT":                  "Bad-Name",
		"EVENTBUS_PUBLICATION":           "1pub",
		"EVENTBUS_STREAM":                "a.b",
		"EVENTBUS_SUBJECT_PREFIX":        "events.>",
		"EVENTBUS_HTTP_ADDR":             "nonsense",
		"EVENTBUS_LOG_LEVEL":             "loud",
		"EVENTBUS_LOG_FORMAT":            "xml",
		"EVENTBUS_STANDBY_INTERVAL":      "1h",
		"EVENTBUS_STATUS_FLUSH_INTERVAL": "soon",
		"EVENTBUS_HEARTBEAT_INTERVAL":    "-1s",
		"EVENTBUS_RETENTION":             "10m",
		"EVENTBUS_REDRIVE_AFTER":         "0s",
	} {
		t.Run(variable, func(t *testing.T) {
			unsetAll(t)
			t.Setenv(variable, value)
			_, err := Load()
			require.Error(t, err)
			var ce *Error
			require.True(t, errors.As(err, &ce), "a config.Error: %v", err)
			assert.Equal(t, variable, ce.Variable)
			assert.True(t, strings.HasPrefix(err.Error(), variable+": "), "message starts with the variable: %s", err)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestRedact(t *testing.T) {
	dsn := "postgres://relay:s3cret@db:5432/crm"
	assert.Equal(t, "cannot connect to relay:xxxxx@db", Redact("cannot connect to relay:s3cret@db", dsn))
	assert.Equal(t, "no password here", Redact("no password here", "postgres://db/crm"))
}

func TestValidSubject(t *testing.T) {
	for _, ok := range []string{"lead.created", "a", "payment-completed.v2", "заказ.создан"} {
		assert.NoError(t, ValidSubject(ok), ok)
	}
	for _, bad := range []string{"", "a..b", ".a", "a.", "a b", "a.*", "a.>", "a\tb", "a\x00b"} {
		assert.Error(t, ValidSubject(bad), "%q", bad)
	}
}

func TestRetentionAcceptsDays(t *testing.T) {
	unsetAll(t)
	t.Setenv("EVENTBUS_RETENTION", "30d")
	c, err := Load()
	require.NoError(t, err)
	assert.Equal(t, 30*24*time.Hour, time.Duration(c.Retention))

	t.Setenv("EVENTBUS_RETENTION", "soon")
	_, err = Load()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "EVENTBUS_RETENTION")
}
