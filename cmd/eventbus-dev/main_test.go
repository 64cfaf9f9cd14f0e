package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// logBuffer collects a logger's lines; safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testSupervisor supervises `sh -c script` with short backoffs.
func testSupervisor(script string) (supervisor, *logBuffer) {
	var out logBuffer
	return supervisor{
		command:    func() *exec.Cmd { return exec.Command("sh", "-c", script) },
		log:        slog.New(slog.NewTextHandler(&out, nil)),
		backoff:    time.Millisecond,
		maxBackoff: 4 * time.Millisecond,
		crashes:    5,
		window:     time.Minute,
	}, &out
}

func TestSupervisorRestartsAKilledRelayNamingTheSignal(t *testing.T) {
	s, out := testSupervisor("kill -KILL $$")
	err := s.run(t.Context())
	require.EqualError(t, err, "relay killed by signal KILL: 5 exits within 1m0s; not restarting")
	assert.Equal(t, 4, strings.Count(out.String(), `msg="relay killed by signal KILL; restarting"`), "%s", out)
	assert.Equal(t, 5, strings.Count(out.String(), `msg="relay started"`), "%s", out)
	assert.NotContains(t, out.String(), "code -1")
}

func TestSupervisorDoesNotRestartABadConfiguration(t *testing.T) {
	s, out := testSupervisor("exit 2")
	err := s.run(t.Context())
	require.EqualError(t, err, "relay exited with code 2 (bad configuration: see its line above); not restarting")
	assert.NotContains(t, out.String(), "restarting")
}

// Ctrl-C (the context ends) stops the relay with SIGTERM and nothing is
// restarted.
func TestSupervisorStopsTheRelayWhenTheContextEnds(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready")
	s, out := testSupervisor(`trap 'exit 0' TERM; : > ` + ready + `; while :; do sleep 0.05; done`)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- s.run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "the child did not start: %s", out)
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-errc:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the supervisor did not return after the context ended")
	}
	assert.NotContains(t, out.String(), "restarting")
}

func TestAdminTokenIsGeneratedOnceAndKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin-token")
	token, source, err := adminToken("", path)
	require.NoError(t, err)
	assert.Equal(t, tokenGenerated, source)
	assert.Regexp(t, `^[0-9a-f]{64}$`, token, "32 random bytes, hex")
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	again, source, err := adminToken("", path)
	require.NoError(t, err)
	assert.Equal(t, tokenFromFile, source)
	assert.Equal(t, token, again, "the token survives restarts")

	mine, source, err := adminToken("my-own-token-0123456789", path)
	require.NoError(t, err)
	assert.Equal(t, tokenFromEnv, source)
	assert.Equal(t, "my-own-token-0123456789", mine, "EVENTBUS_ADMIN_TOKEN wins")

	require.NoError(t, os.WriteFile(path, []byte("short\n"), 0o644))
	_, _, err = adminToken("", path)
	require.ErrorContains(t, err, "shorter than 16 characters")
}

func TestEnvFileIsSourceable(t *testing.T) {
	dir := t.TempDir()
	d := devEnv{dir: dir, databaseURL: "postgres://postgres@127.0.0.1:54329/postgres?sslmode=disable&application_name=it's",
		natsURL: "nats://127.0.0.1:42229", adminToken: "0123456789abcdef0123", httpAddr: "127.0.0.1:8081"}
	path := filepath.Join(dir, "env")
	require.NoError(t, d.writeEnvFile(path))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "it holds the admin token")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Regexp(t, regexp.MustCompile(`(?m)^export EVENTBUS_DATABASE_URL=`), string(b))

	out, err := exec.Command("sh", "-c", `. "$1" && printf '%s\n%s\n%s\n%s\n' "$EVENTBUS_DATABASE_URL" "$EVENTBUS_NATS_URL" "$EVENTBUS_ADMIN_TOKEN" "$EVENTBUS_HTTP_ADDR"`, "sh", path).Output()
	require.NoError(t, err)
	assert.Equal(t, d.databaseURL+"\n"+d.natsURL+"\n"+d.adminToken+"\n"+d.httpAddr+"\n", string(out), "the HTTP address too: its port may have fallen back")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left behind")
}

func TestChoosePortFallsBackWhenTaken(t *testing.T) {
	var out logBuffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	taken := l.Addr().(*net.TCPAddr).Port

	port, err := choosePort("NATS", taken, log)
	require.NoError(t, err)
	assert.NotEqual(t, taken, port)
	assert.Contains(t, out.String(), "is in use: NATS gets port")

	// A free preferred port is used. Another process may take a port
	// between its release and choosePort: then try another free one.
	require.NoError(t, l.Close())
	free := taken
	for attempt := 1; ; attempt++ {
		port, err = choosePort("NATS", free, log)
		require.NoError(t, err)
		if port == free {
			break
		}
		require.Less(t, attempt, 5, "a free preferred port is used: asked for %d, got %d", free, port)
		free, err = choosePort("NATS", 0, log) // no preference: a port free a moment ago
		require.NoError(t, err)
	}
}

func TestURLHost(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:8080": "127.0.0.1:8080",
		"0.0.0.0:8080":   "127.0.0.1:8080",
		":8080":          "127.0.0.1:8080",
		"[::]:8080":      "127.0.0.1:8080",
		"localhost:9090": "localhost:9090",
	} {
		assert.Equal(t, want, urlHost(addr), addr)
	}
}
