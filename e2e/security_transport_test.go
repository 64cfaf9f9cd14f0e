package e2e

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testcerts"
)

// secureNATS starts a JetStream server that configure locks down (users,
// nkeys, a token, TLS) and returns its client address, 127.0.0.1:PORT.
func secureNATS(t *testing.T, configure func(*server.Options)) string {
	t.Helper()
	opts := &server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		JetStream: true, StoreDir: t.TempDir(),
	}
	configure(opts)
	srv, err := server.NewServer(opts)
	require.NoError(t, err)
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	require.True(t, srv.ReadyForConnections(10*time.Second), "secure NATS server ready")
	return srv.Addr().(*net.TCPAddr).String()
}

// storedCount is the number of messages in stream, read through a
// connection made with opts.
func storedCount(t *testing.T, natsURL, stream string, opts ...nats.Option) int {
	t.Helper()
	nc, err := nats.Connect(natsURL, opts...)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	s, err := js.Stream(t.Context(), stream)
	require.NoError(t, err)
	info, err := s.Info(t.Context())
	require.NoError(t, err)
	return int(info.State.Msgs)
}

// TestRelayOverNATSWithPasswordAndMutualTLS: the relay delivers through a
// server that requires TLS with a client certificate and a password; a wrong
// password, a missing CA or a missing client certificate ends `run` with one
// line and a non-zero exit, and the password is never printed.
func TestRelayOverNATSWithPasswordAndMutualTLS(t *testing.T) {
	t.Parallel()
	const password = "Nats-Pa55word-e2e"
	certs := testcerts.Write(t)
	tlsConfig, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: certs.ServerCert, KeyFile: certs.ServerKey, CaFile: certs.CA, Verify: true,
	})
	require.NoError(t, err)
	addr := secureNATS(t, func(o *server.Options) {
		o.TLS, o.TLSVerify, o.TLSConfig, o.TLSTimeout = true, true, tlsConfig, 2
		o.Username, o.Password = "relay", password
	})
	natsURL := func(pw string) string { return "nats://relay:" + pw + "@" + addr }
	tlsEnv := []string{"EVENTBUS_NATS_CA=" + certs.CA, "EVENTBUS_NATS_CERT=" + certs.ClientCert, "EVENTBUS_NATS_KEY=" + certs.ClientKey}

	e := setup(t)
	relay := e.startRelayEnv(append([]string{"EVENTBUS_NATS_URL=" + natsURL(password)}, tlsEnv...)...)
	for i := range 5 {
		e.publish(t.Context(), "secure.delivered", fmt.Sprintf("agg-%d", i), `{"n": 1}`)
	}
	e.waitProcessed(5, 60*time.Second)
	assert.Equal(t, 5, storedCount(t, natsURL(password), e.stream,
		nats.RootCAs(certs.CA), nats.ClientCert(certs.ClientCert, certs.ClientKey)), "the stream on the secure server holds the events")
	require.Equal(t, 0, relay.stop())
	assert.NotContains(t, relay.out.String(), password)
	assert.Contains(t, relay.out.String(), "relay:xxxxx@", "the log names the server without its password")

	for _, c := range []struct {
		name string
		env  []string
		want string
	}{
		{"wrong password", append([]string{"EVENTBUS_NATS_URL=" + natsURL("Wrong-Pa55word")}, tlsEnv...), "nats: Authorization Violation"},
		{"server not trusted", []string{"EVENTBUS_NATS_URL=" + natsURL(password), "EVENTBUS_NATS_CERT=" + certs.ClientCert, "EVENTBUS_NATS_KEY=" + certs.ClientKey}, "certificate"},
		{"no client certificate", []string{"EVENTBUS_NATS_URL=" + natsURL(password), "EVENTBUS_NATS_CA=" + certs.CA}, "tls"},
	} {
		t.Run(c.name, func(t *testing.T) {
			started := time.Now()
			r := runCLI(t, e.bin, append(e.environ(), c.env...), "run")
			assert.Equal(t, 1, r.code, "%s", r)
			assert.Less(t, time.Since(started), 30*time.Second, "refused at once, not retried")
			requireOneLine(t, r.stderr, "eventbus run: connect to NATS nats://relay:xxxxx@"+addr+": ")
			assert.Contains(t, r.stderr, c.want)
			assert.NotContains(t, r.stderr+r.stdout, password)
			assert.NotContains(t, r.stderr+r.stdout, "Wrong-Pa55word")
		})
	}

	t.Run("tail and replay use the same options", func(t *testing.T) {
		environ := append(e.environ(), append([]string{"EVENTBUS_NATS_URL=" + natsURL(password)}, tlsEnv...)...)
		r := runCLI(t, e.bin, environ, "replay", "--event-type", "secure.delivered")
		require.Equal(t, 0, r.code, "%s", r)
		assert.Contains(t, r.stdout, "replayed 5 events")
		assert.Equal(t, 10, storedCount(t, natsURL(password), e.stream,
			nats.RootCAs(certs.CA), nats.ClientCert(certs.ClientCert, certs.ClientKey)))

		r = runCLI(t, e.bin, append(environ, "EVENTBUS_NATS_URL="+natsURL("Wrong-Pa55word")), "tail")
		assert.Equal(t, 1, r.code, "%s", r)
		requireOneLine(t, r.stderr, "eventbus tail: connect to NATS nats://relay:xxxxx@"+addr+": nats: Authorization Violation")
		assert.NotContains(t, r.stderr, "Wrong-Pa55word")
	})

	t.Run("a certificate file that does not load is bad configuration", func(t *testing.T) {
		garbage := filepath.Join(t.TempDir(), "ca.pem")
		require.NoError(t, os.WriteFile(garbage, []byte("not a certificate\n"), 0o600))
		for variable, value := range map[string]string{
			"EVENTBUS_NATS_CA":   garbage,
			"EVENTBUS_NATS_NKEY": filepath.Join(t.TempDir(), "missing.nk"),
		} {
			r := runCLI(t, e.bin, append(e.environ(), variable+"="+value), "run")
			assert.Equal(t, 2, r.code, "%s", r)
			requireOneLine(t, r.stderr, "eventbus: configuration: "+variable+": ")
		}
		r := runCLI(t, e.bin, append(e.environ(), "EVENTBUS_NATS_CERT="+certs.ClientCert), "run")
		assert.Equal(t, 2, r.code, "%s", r)
		requireOneLine(t, r.stderr, "EVENTBUS_NATS_KEY: required with EVENTBUS_NATS_CERT")
	})
}

// TestRelayOverNATSWithNkeyAndToken: the relay authenticates with an nkey
// seed file, and with a token in the URL.
func TestRelayOverNATSWithNkeyAndToken(t *testing.T) {
	t.Parallel()
	pub, seedFile := testcerts.NkeyUser(t)
	seed, err := os.ReadFile(seedFile)
	require.NoError(t, err)
	const token = "Nats-T0ken-e2e-0123456789"

	for _, c := range []struct {
		name      string
		configure func(*server.Options)
		url       func(addr string) string
		env       []string
		connect   []nats.Option // for the test's own reads
	}{
		{
			name:      "nkey",
			configure: func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} },
			url:       func(addr string) string { return "nats://" + addr },
			env:       []string{"EVENTBUS_NATS_NKEY=" + seedFile},
			connect:   []nats.Option{must(nats.NkeyOptionFromSeed(seedFile))},
		},
		{
			name:      "token",
			configure: func(o *server.Options) { o.Authorization = token },
			url:       func(addr string) string { return "nats://" + token + "@" + addr },
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			addr := secureNATS(t, c.configure)
			e := setup(t)
			relay := e.startRelayEnv(append([]string{"EVENTBUS_NATS_URL=" + c.url(addr)}, c.env...)...)
			for i := range 3 {
				e.publish(t.Context(), "secure."+c.name, fmt.Sprintf("agg-%d", i), `{}`)
			}
			e.waitProcessed(3, 60*time.Second)
			assert.Equal(t, 3, storedCount(t, c.url(addr), e.stream, c.connect...))
			require.Equal(t, 0, relay.stop())
			assert.NotContains(t, relay.out.String(), token)
			assert.NotContains(t, relay.out.String(), string(seed))

			// Without the credentials the server refuses: one line, exit 1.
			r := runCLI(t, e.bin, append(e.environ(), "EVENTBUS_NATS_URL=nats://"+addr), "run")
			assert.Equal(t, 1, r.code, "%s", r)
			requireOneLine(t, r.stderr, "Authorization Violation")
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestNoPasswordInAnyOutput runs the relay and the CLI with passwords in the
// database and NATS URLs and an admin token, and looks for them in every
// line printed: logs at debug level, status, status --json, replay, and runs
// that cannot reach Postgres or NATS. sslmode from the URL is honoured.
func TestNoPasswordInAnyOutput(t *testing.T) {
	t.Parallel()
	const (
		pgPassword   = "Pg-Pa55word-e2e"
		natsPassword = "Nats-Pa55word-e2e"
		adminToken   = "Admin-T0ken-e2e-0123456789"
	)
	secrets := []string{pgPassword, natsPassword, adminToken}
	e := setup(t)
	// The test cluster trusts local connections: the password is sent and
	// ignored, which is all this test needs.
	u, err := url.Parse(e.dbURL)
	require.NoError(t, err)
	u.User = url.UserPassword(u.User.Username(), pgPassword)
	dbURL := u.String()
	nu, err := url.Parse(e.nats.URL())
	require.NoError(t, err)
	nu.User = url.UserPassword("relay", natsPassword) // a server without auth accepts any
	httpAddr := freeAddr(t)
	environ := append(e.environ(),
		"EVENTBUS_DATABASE_URL="+dbURL,
		"EVENTBUS_NATS_URL="+nu.String(),
		"EVENTBUS_ADMIN_TOKEN="+adminToken,
		"EVENTBUS_HTTP_ADDR="+httpAddr,
	)
	noSecret := func(what, out string) {
		t.Helper()
		for _, s := range secrets {
			assert.NotContains(t, out, s, "%s prints a secret:\n%s", what, out)
		}
	}

	relay := e.startRelayEnv(environ[len(e.environ()):]...)
	e.publish(t.Context(), "secret.kept", "a-1", `{}`)
	e.waitProcessed(1, 60*time.Second)
	waitHTTP(t, 30*time.Second, httpAddr, "/readyz", 200)
	require.Equal(t, 0, relay.stop())
	noSecret("run", relay.out.String())

	for _, args := range [][]string{{"status"}, {"status", "--json"}, {"replay", "--event-type", "secret.kept"}} {
		r := runCLI(t, e.bin, environ, args...)
		require.Equal(t, 0, r.code, "%s", r)
		noSecret(strings.Join(args, " "), r.stdout+r.stderr)
	}

	wrongPort := *u
	wrongPort.Host = freeAddr(t)
	wrongNATS := *nu
	wrongNATS.Host = freeAddr(t)
	unreachable := []struct {
		name string
		env  []string
		log  string // a line that shows the relay is retrying
	}{
		{"postgres", []string{"EVENTBUS_DATABASE_URL=" + wrongPort.String()}, "database unavailable; retrying"},
		{"nats", []string{"EVENTBUS_NATS_URL=" + wrongNATS.String()}, "nats unavailable; retrying"},
	}
	for _, c := range unreachable {
		p := e.startRelayEnv(append(environ[len(e.environ()):], append(c.env, "EVENTBUS_HTTP_ADDR=")...)...)
		eventually(t, 30*time.Second, func() (bool, string) {
			return strings.Contains(p.out.String(), c.log), "relay log:\n" + p.out.String()
		})
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		<-p.done
		noSecret("run against an unreachable "+c.name, p.out.String())
	}

	r := runCLI(t, e.bin, append(environ, "EVENTBUS_DATABASE_URL="+wrongPort.String()), "status")
	assert.Equal(t, 1, r.code, "%s", r)
	requireOneLine(t, r.stderr, "eventbus status: connect to database")
	noSecret("status against a wrong port", r.stdout+r.stderr)

	bad := *u
	bad.Host = "127.0.0.1:notaport"
	r = runCLI(t, e.bin, append(environ, "EVENTBUS_DATABASE_URL="+bad.String()), "status")
	assert.Equal(t, 2, r.code, "%s", r)
	noSecret("status with a malformed URL", r.stdout+r.stderr)

	// sslmode is the URL's: the test cluster has no TLS, so require fails.
	q := u.Query()
	q.Set("sslmode", "require")
	tlsURL := *u
	tlsURL.RawQuery = q.Encode()
	r = runCLI(t, e.bin, append(environ, "EVENTBUS_DATABASE_URL="+tlsURL.String()), "status")
	assert.Equal(t, 1, r.code, "%s", r)
	assert.Contains(t, r.stderr, "TLS", "sslmode=require is honoured")
	noSecret("status with sslmode=require", r.stdout+r.stderr)
}

// TestRelayExitsWhenNATSRefusesItAfterARestart: a server that comes back
// from an outage refusing the relay's credentials (a password changed) ends
// the relay with one error line and exit 1, instead of a relay that looks
// alive and delivers nothing.
func TestRelayExitsWhenNATSRefusesItAfterARestart(t *testing.T) {
	t.Parallel()
	store := t.TempDir()
	start := func(port int, password string) *server.Server {
		srv, err := server.NewServer(&server.Options{
			Host: "127.0.0.1", Port: port, NoSigs: true, NoLog: true, JetStream: true, StoreDir: store,
			Username: "relay", Password: password,
		})
		require.NoError(t, err)
		srv.Start()
		require.True(t, srv.ReadyForConnections(10*time.Second))
		return srv
	}
	srv := start(server.RANDOM_PORT, "old-Pa55word")
	addr := srv.Addr().(*net.TCPAddr)
	e := setup(t)
	relay := e.startRelayEnv("EVENTBUS_NATS_URL=nats://relay:old-Pa55word@" + addr.String())
	e.publish(t.Context(), "before.rotation", "a-1", `{}`)
	e.waitProcessed(1, 60*time.Second)

	srv.Shutdown()
	srv.WaitForShutdown()
	srv = start(addr.Port, "new-Pa55word")
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })

	select {
	case <-relay.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("the relay still runs a minute after NATS refused it:\n%s", relay.out.String())
	}
	out := relay.out.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	assert.Equal(t, "eventbus run: NATS connection closed: nats: Authorization Violation", lines[len(lines)-1], "%s", out)
	assert.NotContains(t, out, "old-Pa55word")
	require.Error(t, relay.err, "exit status 1")
}
