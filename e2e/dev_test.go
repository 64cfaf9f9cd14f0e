package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startDev starts eventbus-dev with data in dir and the given preferred
// ports, in an environment without EVENTBUS_* variables, as in a new shell.
// The test's cleanup stops it with SIGTERM (so that it stops PostgreSQL).
func startDev(t *testing.T, dir string, pgPort, natsPort, httpPort int) *relayProc {
	t.Helper()
	var environ []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EVENTBUS_") {
			environ = append(environ, kv)
		}
	}
	cmd := exec.Command(devBinary(t), "-bin", binary(t), "-dir", dir,
		"-postgres-port", strconv.Itoa(pgPort), "-nats-port", strconv.Itoa(natsPort), "-http-port", strconv.Itoa(httpPort))
	cmd.Env = append(environ, "EVENTBUS_LOG_FORMAT=text")
	p := &relayProc{t: t, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	require.NoError(t, cmd.Start())
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("eventbus-dev output:\n%s", p.out.String())
		}
	})
	return p
}

// waitOutput waits until the output holds n matches of re and returns the
// last one.
func (p *relayProc) waitOutput(re *regexp.Regexp, n int, timeout time.Duration) []string {
	p.t.Helper()
	var last []string
	eventually(p.t, timeout, func() (bool, string) {
		select {
		case <-p.done:
			p.t.Fatalf("%s exited (%v) before printing %s:\n%s", p.cmd.Path, p.err, re, p.out.String())
		default:
		}
		all := re.FindAllStringSubmatch(p.out.String(), -1)
		if len(all) < n {
			return false, fmt.Sprintf("%d of %d matches of %s in:\n%s", len(all), n, re, p.out.String())
		}
		last = all[len(all)-1]
		return true, ""
	})
	return last
}

var (
	devReady        = regexp.MustCompile(`(?m)^  eventbus is running\.$`)
	devRelayStarted = regexp.MustCompile(`msg="relay started" pid=(\d+)`)
	devRestarting   = regexp.MustCompile(`msg="relay killed by signal KILL; restarting"`)
	envLine         = regexp.MustCompile(`(?m)^export (EVENTBUS_[A-Z_]+)='([^']*)'$`)
)

// readDevEnv reads the variables of .dev/env, requiring mode 0600.
func readDevEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "%s holds the admin token", path)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	vars := map[string]string{}
	for _, m := range envLine.FindAllStringSubmatch(string(b), -1) {
		vars[m[1]] = m[2]
	}
	return vars
}

func urlPort(t *testing.T, raw string) int {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	port, err := strconv.Atoi(u.Port())
	require.NoError(t, err)
	return port
}

// authGet returns the status code of GET http://addr/path with the bearer
// token.
func authGet(t *testing.T, addr, path, token string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, res.Body.Close())
	return res.StatusCode
}

// TestDevEnvironment follows the README's first hour: make run (eventbus-dev)
// starts PostgreSQL, NATS and the relay on stable ports (a free one where the
// preferred port is taken), writes .dev/env and the admin token, serves the
// monitor; the relay killed with SIGKILL is restarted while the services stay;
// an event published with the printed commands arrives; Ctrl-C stops it all;
// the next start keeps ports and token.
func TestDevEnvironment(t *testing.T) {
	t.Parallel()
	base, err := os.MkdirTemp("", "eventbus-dev-e2e-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(base, 0o755)) // PostgreSQL's OS user enters it when we are root
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	dir := filepath.Join(base, ".dev")

	pgPort, httpPort := urlPort(t, "x://"+freeAddr(t)), urlPort(t, "x://"+freeAddr(t))
	holder, err := net.Listen("tcp", "127.0.0.1:0") // someone else has NATS's port
	require.NoError(t, err)
	natsPort := holder.Addr().(*net.TCPAddr).Port

	started := time.Now()
	dev := startDev(t, dir, pgPort, natsPort, httpPort)
	dev.waitOutput(devReady, 1, 3*time.Minute)
	out := dev.out.String()
	env := readDevEnv(t, filepath.Join(dir, "env"))
	require.Equal(t, pgPort, urlPort(t, env["EVENTBUS_DATABASE_URL"]), "PostgreSQL on its preferred port")
	gotNATS := urlPort(t, env["EVENTBUS_NATS_URL"])
	require.NotEqual(t, natsPort, gotNATS, "NATS's preferred port was taken")
	assert.Contains(t, out, fmt.Sprintf("port %d is in use: NATS gets port %d this time", natsPort, gotNATS))

	token := env["EVENTBUS_ADMIN_TOKEN"]
	require.Regexp(t, `^[0-9a-f]{64}$`, token)
	b, err := os.ReadFile(filepath.Join(dir, "admin-token"))
	require.NoError(t, err)
	require.Equal(t, token+"\n", string(b))
	fi, err := os.Stat(filepath.Join(dir, "admin-token"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	assert.Equal(t, 1, strings.Count(out, token), "the new token is printed once")
	assert.Contains(t, out, "/crm/events#token="+token, "in the monitor's sign-in link")
	httpAddr := fmt.Sprintf("127.0.0.1:%d", httpPort)
	httpBase := "http://" + httpAddr
	for _, want := range []string{env["EVENTBUS_DATABASE_URL"], env["EVENTBUS_NATS_URL"], httpBase + "/crm/events", httpBase + "/metrics", "source " + dir + "/env"} {
		assert.Contains(t, out, want, "the banner shows it")
	}

	// The monitor is on, behind the token.
	code, _ := httpGet(httpAddr, "/crm/events")
	assert.Equal(t, http.StatusOK, code, "the page")
	code, _ = httpGet(httpAddr, "/api/stats")
	assert.Equal(t, http.StatusUnauthorized, code)
	assert.Equal(t, http.StatusOK, authGet(t, httpAddr, "/api/stats", token))
	code, _ = httpGet(httpAddr, "/metrics")
	assert.Equal(t, http.StatusOK, code)

	// kill -9 the relay: it comes back; PostgreSQL and NATS stay.
	first, err := strconv.Atoi(dev.waitOutput(devRelayStarted, 1, time.Second)[1])
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(first, syscall.SIGKILL))
	dev.waitOutput(devRestarting, 1, 30*time.Second)
	second, err := strconv.Atoi(dev.waitOutput(devRelayStarted, 2, 30*time.Second)[1])
	require.NoError(t, err)
	require.NotEqual(t, first, second)
	assert.NotContains(t, dev.out.String(), "nats shut down")
	assert.NotContains(t, dev.out.String(), "postgres stopped")
	waitHTTP(t, 60*time.Second, httpAddr, "/readyz", http.StatusOK)

	// The printed commands, with .dev/env: publish, and the event arrives.
	environ := os.Environ()
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	r := runCLI(t, binary(t), environ, "publish", "--event-type", "demo.hello", "--aggregate-type", "demo", "--aggregate-id", "1", "--payload", `{"hello": "world"}`)
	require.Equal(t, 0, r.code, "%s", r)
	id := strings.TrimSpace(r.stdout)
	nc, err := nats.Connect(env["EVENTBUS_NATS_URL"])
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	stream, err := js.Stream(t.Context(), "EVENTBUS")
	require.NoError(t, err)
	eventually(t, 30*time.Second, func() (bool, string) {
		m, err := stream.GetLastMsgForSubject(t.Context(), "events.demo.hello")
		if err != nil {
			return false, err.Error()
		}
		return m.Header.Get("Nats-Msg-Id") == id, fmt.Sprintf("last message %s, want %s", m.Header.Get("Nats-Msg-Id"), id)
	})
	// ... and the monitor shows it processed, through the address .dev/env
	// gives another shell.
	require.Equal(t, httpAddr, env["EVENTBUS_HTTP_ADDR"], ".dev/env has the HTTP address")
	eventually(t, 30*time.Second, func() (bool, string) {
		code, _, body := apiGet(t, env["EVENTBUS_HTTP_ADDR"], "/api/events/"+id, token)
		var got struct{ Status string }
		_ = json.Unmarshal([]byte(body), &got)
		return code == http.StatusOK && got.Status == "processed", fmt.Sprintf("monitor: %d %s", code, body)
	})
	t.Logf("first start to the published event processed in the monitor (with a relay kill on the way): %s",
		time.Since(started).Round(time.Second))

	// Ctrl-C: everything stops, cleanly.
	require.Equal(t, 0, dev.stopWith(os.Interrupt, 60*time.Second), "%s", dev.out.String())
	out = dev.out.String()
	assert.Contains(t, out, "nats shut down")
	assert.Contains(t, out, "postgres stopped")
	assert.ErrorIs(t, syscall.Kill(second, 0), syscall.ESRCH, "the relay is gone")
	_, err = pgx.Connect(t.Context(), env["EVENTBUS_DATABASE_URL"])
	assert.Error(t, err, "PostgreSQL is down")

	// The next start: NATS's port is free now and taken; the token is kept
	// and not printed again.
	require.NoError(t, holder.Close())
	dev = startDev(t, dir, pgPort, natsPort, httpPort)
	dev.waitOutput(devReady, 1, 3*time.Minute)
	again := readDevEnv(t, filepath.Join(dir, "env"))
	assert.Equal(t, natsPort, urlPort(t, again["EVENTBUS_NATS_URL"]), "NATS on its preferred port")
	assert.Equal(t, env["EVENTBUS_DATABASE_URL"], again["EVENTBUS_DATABASE_URL"], "the same URL as before")
	assert.Equal(t, token, again["EVENTBUS_ADMIN_TOKEN"], "the token survives restarts")
	assert.NotContains(t, dev.out.String(), token, "printed only when generated")
	assert.Contains(t, dev.out.String(), "cat "+dir+"/admin-token")
	assert.Equal(t, http.StatusOK, authGet(t, httpAddr, "/api/stats", token))
	require.Equal(t, 0, dev.stopWith(os.Interrupt, 60*time.Second), "%s", dev.out.String())
}
