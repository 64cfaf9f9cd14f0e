package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/config"
)

func TestLoggerRedactsSecrets(t *testing.T) {
	cfg := config.Config{
		DatabaseURL: "postgres://relay:pg-secret-pw@db:5432/crm",
		NATSURL:     "nats://relay:nats-secret-pw@nats:4222",
		AdminToken:  "admin-secret-token-0123",
		LogLevel:    "debug",
	}
	for _, format := range []string{"json", "text"} {
		cfg.LogFormat = format
		var out bytes.Buffer
		log, err := newLogger(cfg, &out)
		require.NoError(t, err)
		log.Info("connect postgres://relay:pg-secret-pw@db:5432/crm",
			"err", errors.New("dial nats://relay:nats-secret-pw@nats:4222: refused"),
			"token", "admin-secret-token-0123",
			"took", 1500*time.Millisecond)
		line := out.String()
		for _, secret := range []string{"pg-secret-pw", "nats-secret-pw", "admin-secret-token-0123"} {
			assert.NotContains(t, line, secret, format)
		}
		assert.Contains(t, line, "relay:xxxxx@db", format)
		assert.Equal(t, 1, strings.Count(line, "\n"), format)
		if format == "json" {
			assert.Contains(t, line, `"took":"1.5s"`, "durations as text (CONTRACT v2)")
		}
	}
}

func TestUnloadableNATSFileIsAConfigurationError(t *testing.T) {
	t.Setenv("EVENTBUS_DATABASE_URL", "postgres://relay:pg-secret-pw@127.0.0.1:1/crm?connect_timeout=1")
	t.Setenv("EVENTBUS_NATS_URL", "nats://relay:nats-secret-pw@127.0.0.1:1")
	t.Setenv("EVENTBUS_NATS_CA", "/nonexistent/ca.pem")
	var stdout, stderr bytes.Buffer
	code := run([]string{"tail"}, &stdout, &stderr)
	assert.Equal(t, 2, code)
	assert.Equal(t, "eventbus: configuration: EVENTBUS_NATS_CA: cannot read /nonexistent/ca.pem: no such file or directory\n", stderr.String())
}

func TestLoggerPrintsDurationsAsText(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var out bytes.Buffer
		log, err := newLogger(config.Config{LogLevel: "info", LogFormat: format}, &out)
		require.NoError(t, err)
		log.Info("waited", "retry_in", 5200*time.Millisecond)
		assert.Contains(t, out.String(), "5.2s", format)
		assert.NotContains(t, out.String(), "5200000000", format)
	}
}
