package config

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// unsetAll unsets every EVENTBUS_ variable for the test, so the machine's
// environment cannot leak in; t.Setenv restores them afterwards.
// unsetAll clears every EVENTBUS_* variable and the bare names too, so
// that no test passes because of the machine's environment.
func unsetAll(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if _, bare := bareNames()[name]; strings.HasPrefix(name, Prefix+"_") || bare {
			t.Setenv(name, "")
			require.NoError(t, os.Unsetenv(name))
		}
	}
}

// bareNames are the variables' names without the prefix.
func bareNames() map[string]struct{} {
	names := map[string]struct{}{}
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		if tag := ct.Field(i).Tag.Get("envconfig"); tag != "" {
			names[strings.TrimPrefix(tag, Prefix+"_")] = struct{}{}
		}
	}
	return names
}

// Only EVENTBUS_* configures eventbus (CONTRACT v2): the bare names, which
// other programs use (the nats CLI's NATS_URL, Supabase's JWT_SECRET), are
// ignored, even when their values are invalid.
func TestBareNamesAreIgnored(t *testing.T) {
	unsetAll(t)
	names := bareNames()
	require.Contains(t, names, "DATABASE_URL")
	require.Contains(t, names, "JWT_SECRET")
	for name := range names {
		t.Setenv(name, "not-a-valid-value")
	}
	c, err := Load()
	require.NoError(t, err, "bare names set to invalid values")
	assert.Equal(t, "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", c.DatabaseURL)
	assert.Equal(t, "nats://127.0.0.1:4222", c.NATSURL)
	assert.Equal(t, 5, c.MaxRetries)
	assert.Empty(t, c.JWTSecret)
	assert.Empty(t, c.AdminToken)
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
	assert.Equal(t, 30*time.Second, time.Duration(c.HeartbeatInterval))
	assert.Equal(t, 10*time.Minute, time.Duration(c.DuplicateWindow))
	assert.Equal(t, 7*24*time.Hour, time.Duration(c.StreamMaxAge))
}

// Every duration variable takes 30s, 5m, 1h and 7d (CONTRACT v2).
func TestDurationsAcceptSecondsToDays(t *testing.T) {
	for value, want := range map[string]time.Duration{
		"30s": 30 * time.Second, "5m": 5 * time.Minute, "1h": time.Hour, "7d": 7 * 24 * time.Hour,
		"1d12h": 36 * time.Hour, "0": 0,
	} {
		unsetAll(t)
		t.Setenv("EVENTBUS_REDRIVE_INTERVAL", value)
		t.Setenv("EVENTBUS_HEARTBEAT_INTERVAL", value)
		t.Setenv("EVENTBUS_STREAM_MAX_AGE", value)
		t.Setenv("EVENTBUS_DUPLICATE_WINDOW", "0")
		c, err := Load()
		require.NoError(t, err, value)
		assert.Equal(t, want, time.Duration(c.RedriveInterval), value)
		assert.Equal(t, want, time.Duration(c.HeartbeatInterval), value)
		assert.Equal(t, want, time.Duration(c.StreamMaxAge), value)
	}
	unsetAll(t)
	t.Setenv("EVENTBUS_SHUTDOWN_TIMEOUT", "2d")
	c, err := Load()
	require.NoError(t, err)
	assert.Equal(t, 48*time.Hour, time.Duration(c.ShutdownTimeout))
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
		"EVENTBUS_RELAY_ROLE":            "relay; DROP TABLE event_bus",
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

func TestRelayRole(t *testing.T) {
	unsetAll(t)
	c, err := Load()
	require.NoError(t, err)
	assert.Empty(t, c.RelayRole, "no relay role by default")

	t.Setenv("EVENTBUS_RELAY_ROLE", "eventbus_relay")
	c, err = Load()
	require.NoError(t, err)
	assert.Equal(t, "eventbus_relay", c.RelayRole)

	for _, bad := range []string{"1relay", "relay-role", `relay"`, "a b", strings.Repeat("r", 64)} {
		t.Setenv("EVENTBUS_RELAY_ROLE", bad)
		_, err = Load()
		require.Error(t, err, "%q", bad)
		assert.Contains(t, err.Error(), "EVENTBUS_RELAY_ROLE: ", "%q", bad)
		assert.Contains(t, err.Error(), "is not a valid role name", "%q", bad)
	}
}

func TestTransportAndHTTPSecurityVariables(t *testing.T) {
	unsetAll(t)
	c, err := Load()
	require.NoError(t, err)
	assert.Empty(t, c.AdminToken, "admin endpoints are off by default")
	assert.Empty(t, c.MetricsAddr, "/metrics is on HTTP_ADDR by default")
	assert.Empty(t, c.NATSCreds+c.NATSNkey+c.NATSCA+c.NATSCert+c.NATSKey)

	for _, tc := range []struct {
		env      map[string]string
		variable string
	}{
		{map[string]string{"EVENTBUS_NATS_CERT": "/c.pem"}, "EVENTBUS_NATS_KEY"},
		{map[string]string{"EVENTBUS_NATS_KEY": "/k.pem"}, "EVENTBUS_NATS_CERT"},
		{map[string]string{"EVENTBUS_NATS_CREDS": "/u.creds", "EVENTBUS_NATS_NKEY": "/u.nk"}, "EVENTBUS_NATS_NKEY"},
		{map[string]string{"EVENTBUS_NATS_URL": "nats://a:4222,http://b:4222"}, "EVENTBUS_NATS_URL"},
		{map[string]string{"EVENTBUS_NATS_URL": "nats://u:s3cret@h:bad"}, "EVENTBUS_NATS_URL"},
		{map[string]string{"EVENTBUS_METRICS_ADDR": "nonsense"}, "EVENTBUS_METRICS_ADDR"},
		{map[string]string{"EVENTBUS_METRICS_ADDR": "127.0.0.1:8080"}, "EVENTBUS_METRICS_ADDR"},
		{map[string]string{"EVENTBUS_ADMIN_TOKEN": "short"}, "EVENTBUS_ADMIN_TOKEN"},
		{map[string]string{"EVENTBUS_JWT_SECRET": "short-secret"}, "EVENTBUS_JWT_SECRET"},
	} {
		t.Run(tc.variable, func(t *testing.T) {
			unsetAll(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := Load()
			var ce *Error
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.variable, ce.Variable)
			assert.NotContains(t, err.Error(), "\n")
			assert.NotContains(t, err.Error(), "s3cret")
		})
	}

	unsetAll(t)
	t.Setenv("EVENTBUS_NATS_URL", "nats://a:4222, tls://b:4222")
	t.Setenv("EVENTBUS_NATS_CERT", "/c.pem")
	t.Setenv("EVENTBUS_NATS_KEY", "/k.pem")
	t.Setenv("EVENTBUS_METRICS_ADDR", "0.0.0.0:9090")
	t.Setenv("EVENTBUS_ADMIN_TOKEN", strings.Repeat("t", MinAdminTokenLen))
	t.Setenv("EVENTBUS_JWT_SECRET", strings.Repeat("j", MinJWTSecretLen))
	loaded, err := Load()
	require.NoError(t, err, "several NATS URLs, a client certificate, a metrics listener, a token, a JWT secret")
	assert.Equal(t, strings.Repeat("j", MinJWTSecretLen), loaded.JWTSecret)
}

func TestRedactorHidesEverySecret(t *testing.T) {
	c := Config{
		DatabaseURL: "postgres://relay:pg%40pass@db:5432/crm?sslmode=require",
		NATSURL:     "nats://relay:natspass@n1:4222,nats://natstoken@n2:4222",
		AdminToken:  "admin-token-0123456789",
	}
	r := c.Redactor()
	line := "connect postgres://relay:pg%40pass@db:5432/crm (pg@pass) nats://relay:natspass@n1:4222 " +
		"nats://natstoken@n2:4222 Bearer admin-token-0123456789"
	got := r.Replace(line)
	for _, secret := range []string{"pg@pass", "pg%40pass", "natspass", "natstoken", "admin-token-0123456789"} {
		assert.NotContains(t, got, secret)
	}
	assert.Contains(t, got, "relay:xxxxx@db", "the rest of the line is kept")

	kv := Config{DatabaseURL: "host=db user=relay password=kvpass dbname=crm", NATSURL: "nats://n:4222"}
	assert.Equal(t, "password=xxxxx", kv.Redactor().Replace("password=kvpass"), "key=value connection strings too")
	assert.Equal(t, "nothing secret", Config{NATSURL: "nats://n:4222"}.Redactor().Replace("nothing secret"))
}

// Negative durations and counts mean nothing here: each is refused in one
// line naming its variable, and so is a value JetStream would refuse when the
// relay creates the stream (the relay would retry that forever).
func TestOutOfRangeValuesNameTheVariable(t *testing.T) {
	for _, tc := range []struct {
		env      map[string]string
		variable string
		problem  string
	}{
		{map[string]string{"EVENTBUS_DUPLICATE_WINDOW": "-1m"}, "EVENTBUS_DUPLICATE_WINDOW", "must not be negative"},
		{map[string]string{"EVENTBUS_STREAM_MAX_AGE": "-1h"}, "EVENTBUS_STREAM_MAX_AGE", "must not be negative"},
		{map[string]string{"EVENTBUS_STREAM_MAX_AGE": "-1h", "EVENTBUS_DUPLICATE_WINDOW": "0"}, "EVENTBUS_STREAM_MAX_AGE", "must not be negative"},
		{map[string]string{"EVENTBUS_DUPLICATE_WINDOW": "50ms"}, "EVENTBUS_DUPLICATE_WINDOW", "at least 100ms"},
		{map[string]string{"EVENTBUS_STREAM_MAX_AGE": "50ms", "EVENTBUS_DUPLICATE_WINDOW": "0"}, "EVENTBUS_STREAM_MAX_AGE", "at least 100ms"},
		{map[string]string{"EVENTBUS_DUPLICATE_WINDOW": "2h", "EVENTBUS_STREAM_MAX_AGE": "1h"}, "EVENTBUS_DUPLICATE_WINDOW", "must not be longer than EVENTBUS_STREAM_MAX_AGE"},
		{map[string]string{"EVENTBUS_RETENTION": "-30d"}, "EVENTBUS_RETENTION", "must not be negative"},
		{map[string]string{"EVENTBUS_REDRIVE_AFTER": "0s"}, "EVENTBUS_REDRIVE_AFTER", "must be a positive duration"},
		{map[string]string{"EVENTBUS_SHUTDOWN_TIMEOUT": "0"}, "EVENTBUS_SHUTDOWN_TIMEOUT", "must be a positive duration"},
		{map[string]string{"EVENTBUS_MAX_RETRIES": "-1"}, "EVENTBUS_MAX_RETRIES", "must be at least 1"},
		{map[string]string{"EVENTBUS_PUBLISH_WINDOW": "-1"}, "EVENTBUS_PUBLISH_WINDOW", "must be between 1 and"},
		{map[string]string{"EVENTBUS_PUBLISH_LINGER": "1s"}, "EVENTBUS_PUBLISH_LINGER", "must be at most 100ms"},
		{map[string]string{"EVENTBUS_PUBLISH_LINGER": "-1ms"}, "EVENTBUS_PUBLISH_LINGER", "must not be negative"},
		{map[string]string{"EVENTBUS_HEARTBEAT_INTERVAL": "soon"}, "EVENTBUS_HEARTBEAT_INTERVAL", `invalid value "soon": want a duration such as 30s, 5m, 1h or 7d`},
		{map[string]string{"EVENTBUS_DUPLICATE_WINDOW": "1d-1h"}, "EVENTBUS_DUPLICATE_WINDOW", "want a duration such as 30s, 5m, 1h or 7d"},
		{map[string]string{"EVENTBUS_MAX_RETRIES": "five"}, "EVENTBUS_MAX_RETRIES", `invalid value "five": want an integer`},
		{map[string]string{"EVENTBUS_SLOT_FAILOVER": "yes"}, "EVENTBUS_SLOT_FAILOVER", `invalid value "yes": want true or false`},
		{map[string]string{"EVENTBUS_WEBHOOK_CONCURRENCY": "33"}, "EVENTBUS_WEBHOOK_CONCURRENCY", "must be between 1 and 32"},
	} {
		t.Run(tc.variable+"="+tc.env[tc.variable], func(t *testing.T) {
			unsetAll(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := Load()
			var ce *Error
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.variable, ce.Variable, "%v", err)
			assert.Contains(t, ce.Problem, tc.problem)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

// Every duration variable, present and future, refuses a negative value.
func TestNoDurationMayBeNegative(t *testing.T) {
	ct := reflect.TypeFor[Config]()
	n := 0
	for i := range ct.NumField() {
		f := ct.Field(i)
		if f.Type != reflect.TypeFor[Duration]() {
			continue
		}
		n++
		variable := f.Tag.Get("envconfig")
		t.Run(variable, func(t *testing.T) {
			unsetAll(t)
			t.Setenv(variable, "-1s")
			_, err := Load()
			var ce *Error
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, variable, ce.Variable, "%v", err)
			assert.Equal(t, "must not be negative, got -1s", ce.Problem)
		})
	}
	require.GreaterOrEqual(t, n, 9, "the duration fields were found")
}

// 0s is 0, in any unit (CONTRACT v2: 30s, 5m, 1h, 7d); the stream's two
// durations may be equal, and the window is free when the age is unlimited.
func TestZeroInAnyUnitAndStreamLimits(t *testing.T) {
	for _, zero := range []string{"0", "0s", "0m", "0h", "0d", "0ms"} {
		unsetAll(t)
		for _, v := range []string{"EVENTBUS_DUPLICATE_WINDOW", "EVENTBUS_STREAM_MAX_AGE", "EVENTBUS_HEARTBEAT_INTERVAL",
			"EVENTBUS_REDRIVE_INTERVAL", "EVENTBUS_RETENTION"} {
			t.Setenv(v, zero)
		}
		c, err := Load()
		require.NoError(t, err, zero)
		assert.Zero(t, c.DuplicateWindow, zero)
		assert.Zero(t, c.StreamMaxAge, zero)
		assert.Zero(t, c.HeartbeatInterval, zero)
		assert.Zero(t, c.RedriveInterval, zero)
		assert.Zero(t, c.Retention, zero)
	}
	for window, age := range map[string]string{"1h": "1h", "30d": "0", "100ms": "100ms"} {
		unsetAll(t)
		t.Setenv("EVENTBUS_DUPLICATE_WINDOW", window)
		t.Setenv("EVENTBUS_STREAM_MAX_AGE", age)
		_, err := Load()
		assert.NoError(t, err, "window %s, max age %s", window, age)
	}
}
