package e2e

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
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
	Profiles    []string          `yaml:"profiles"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
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
	opts := natsConfig(t, nats)
	require.True(t, opts.JetStream, "nats runs JetStream")
	require.True(t, opts.SyncAlways, "nats fsyncs every JetStream write (sync_interval: always)")
	require.Contains(t, nats.Volumes, "natsdata:"+opts.StoreDir, "the JetStream store is a volume")

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
		u, err := url.Parse(withoutVariables(raw))
		require.NoError(t, err, "%s=%s", env, raw)
		return u.Hostname()
	}
	require.Equal(t, "postgres", host(migrate, "EVENTBUS_DATABASE_URL"))
	require.Equal(t, "postgres", host(eventbus, "EVENTBUS_DATABASE_URL"))
	require.Equal(t, "nats", host(eventbus, "EVENTBUS_NATS_URL"))
	require.Equal(t, "0.0.0.0:8080", eventbus.Environment["EVENTBUS_HTTP_ADDR"], "listen beyond the container's loopback")

	// The admin endpoints and the monitor: the host's loopback only, and a
	// token compose requires from the environment, never a default.
	require.Equal(t, []string{"127.0.0.1:8080:8080"}, eventbus.Ports, "the relay's HTTP port is published on the host's loopback only")
	token := eventbus.Environment["EVENTBUS_ADMIN_TOKEN"]
	require.Regexp(t, `^\$\{EVENTBUS_ADMIN_TOKEN:\?[^}]+\}$`, token, "EVENTBUS_ADMIN_TOKEN is required (${VAR:?message}), with a message")
}

// TestComposePublishesPortsOnLoopbackOnly: no service of docker-compose.yml
// is reachable from beyond the host.
func TestComposePublishesPortsOnLoopbackOnly(t *testing.T) {
	for name, s := range readCompose(t).Services {
		for _, p := range s.Ports {
			require.True(t, strings.HasPrefix(p, "127.0.0.1:"), "service %s publishes %q: bind it to 127.0.0.1", name, p)
		}
	}
}

// TestComposeClusterProfile checks the optional three-node JetStream
// cluster: clustered with each other, each with its own store and
// sync_interval always, none started without the profile.
func TestComposeClusterProfile(t *testing.T) {
	services := readCompose(t).Services
	nodes := []string{"nats-1", "nats-2", "nats-3"}
	var routes []string
	for _, name := range nodes {
		routes = append(routes, "nats-route://"+name+":6222")
	}
	stores := map[string]bool{}
	ports := map[string]bool{}
	for _, name := range nodes {
		require.Contains(t, services, name, "service %s", name)
		node := services[name]
		require.Equal(t, []string{"cluster"}, node.Profiles, "%s runs only with the cluster profile", name)
		require.Equal(t, name, node.Environment["NATS_SERVER_NAME"])
		t.Setenv("NATS_SERVER_NAME", name)
		opts := natsConfig(t, node)
		require.Equal(t, name, opts.ServerName)
		require.True(t, opts.JetStream, "%s runs JetStream", name)
		require.True(t, opts.SyncAlways, "%s fsyncs every JetStream write (sync_interval: always)", name)
		require.Equal(t, "eventbus", opts.Cluster.Name)
		require.Equal(t, 6222, opts.Cluster.Port)
		var got []string
		for _, r := range opts.Routes {
			got = append(got, r.String())
		}
		require.ElementsMatch(t, routes, got, "%s routes to every node", name)

		var store string
		for _, v := range node.Volumes {
			if strings.HasSuffix(v, ":"+opts.StoreDir) {
				store = strings.TrimSuffix(v, ":"+opts.StoreDir)
			}
		}
		require.NotEmpty(t, store, "%s keeps its JetStream store %s in a volume: %q", name, opts.StoreDir, node.Volumes)
		require.False(t, stores[store], "%s has a store volume of its own", name)
		stores[store] = true
		require.Len(t, node.Ports, 1)
		require.False(t, ports[node.Ports[0]], "%s has a host port of its own", name)
		ports[node.Ports[0]] = true
	}

	cli := services["nats-cli"]
	require.Equal(t, []string{"cluster"}, cli.Profiles)
	require.Equal(t, []string{"nats"}, cli.Entrypoint)
	require.Equal(t, "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222", cli.Environment["NATS_URL"])

	// Without the profile nothing needs the cluster: no service of the
	// default set depends on one that runs only with it.
	for name, s := range services {
		if len(s.Profiles) > 0 {
			continue
		}
		for dep := range s.DependsOn {
			require.Empty(t, services[dep].Profiles, "%s (started without a profile) depends on %s (profile %v)", name, dep, services[dep].Profiles)
		}
	}
}

// natsConfig parses the config file a nats service runs with (`--config
// PATH`, mounted from the repository) as nats-server would.
func natsConfig(t *testing.T, s composeService) *server.Options {
	t.Helper()
	i := slices.Index(s.Command, "--config")
	require.True(t, i >= 0 && i+1 < len(s.Command), "command %q names a config file", s.Command)
	path := s.Command[i+1]
	var source string
	for _, v := range s.Volumes {
		if from, to, ok := strings.Cut(strings.TrimSuffix(v, ":ro"), ":"); ok && to == path {
			source = from
		}
	}
	require.NotEmpty(t, source, "%s is mounted from the repository: %q", path, s.Volumes)
	opts, err := server.ProcessConfigFile(filepath.Join("..", source))
	require.NoError(t, err, "nats-server config %s", source)
	return opts
}

// withoutVariables replaces each ${VAR:-default} with its default, as
// docker compose does when VAR is unset.
func withoutVariables(s string) string {
	return composeVariable.ReplaceAllString(s, "$1")
}

var composeVariable = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}`)
