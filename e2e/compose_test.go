package e2e

import (
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// composeFile is the part of docker-compose.yml these tests read. Commands
// and environments are written as lists and maps there; another form fails
// to decode here, on purpose.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docker-compose.yml"))
	require.NoError(t, err)
	var f composeFile
	require.NoError(t, yaml.Unmarshal(b, &f), "docker-compose.yml")
	return f
}

// TestCompose checks that docker-compose.yml wires the stack the way the
// relay needs it: logical replication, JetStream, the migration finished
// before the relay starts, and URLs that name the compose services.
func TestCompose(t *testing.T) {
	services := readCompose(t).Services
	for _, name := range []string{"postgres", "nats", "migrate", "eventbus"} {
		require.Contains(t, services, name, "service %s", name)
	}
	postgres, nats, migrate, eventbus := services["postgres"], services["nats"], services["migrate"], services["eventbus"]

	require.Contains(t, postgres.Command, "wal_level=logical", "postgres command %q", postgres.Command)
	require.NotNil(t, postgres.Healthcheck, "postgres needs a healthcheck for migrate to wait on")
	require.Contains(t, postgres.Healthcheck.Test, "pg_isready")
	require.Contains(t, nats.Command, "-js", "nats command %q", nats.Command)

	require.Equal(t, []string{"migrate"}, migrate.Command)
	require.Equal(t, []string{"run"}, eventbus.Command)
	require.NotNil(t, migrate.Build, "migrate builds the eventbus image")
	require.NotNil(t, eventbus.Build, "eventbus builds the eventbus image")

	require.Contains(t, migrate.DependsOn, "postgres")
	require.Equal(t, "service_healthy", migrate.DependsOn["postgres"].Condition)
	require.Contains(t, eventbus.DependsOn, "migrate")
	require.Equal(t, "service_completed_successfully", eventbus.DependsOn["migrate"].Condition)
	require.Contains(t, eventbus.DependsOn, "nats")

	host := func(service composeService, env string) string {
		t.Helper()
		raw, ok := service.Environment[env]
		require.True(t, ok, "%s is set", env)
		u, err := url.Parse(raw)
		require.NoError(t, err, "%s=%s", env, raw)
		return u.Hostname()
	}
	require.Equal(t, "postgres", host(migrate, "EVENTBUS_DATABASE_URL"))
	require.Equal(t, "postgres", host(eventbus, "EVENTBUS_DATABASE_URL"))
	require.Equal(t, "nats", host(eventbus, "EVENTBUS_NATS_URL"))
	require.Equal(t, "0.0.0.0:8080", eventbus.Environment["EVENTBUS_HTTP_ADDR"], "listen beyond the container's loopback")
}
