package natsconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/eventbus/eventbus/config"
	"github.com/eventbus/eventbus/internal/testcerts"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNoOptionsWithoutConfiguration(t *testing.T) {
	opts, err := Options(config.Config{NATSURL: "nats://127.0.0.1:4222"})
	require.NoError(t, err)
	assert.Empty(t, opts)
}

func TestBadFilesNameTheVariable(t *testing.T) {
	certs := testcerts.Write(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage")
	require.NoError(t, os.WriteFile(garbage, []byte("not a PEM file\n"), 0o600))
	fakeCreds := filepath.Join(dir, "user.creds")
	require.NoError(t, os.WriteFile(fakeCreds, []byte("-----BEGIN NATS USER JWT-----\nnotajwt\n------END NATS USER JWT------\n"), 0o600))

	for _, tc := range []struct {
		variable string
		cfg      config.Config
		says     string
	}{
		{"EVENTBUS_NATS_CA", config.Config{NATSCA: missing}, "cannot read " + missing + ": no such file or directory"},
		{"EVENTBUS_NATS_CA", config.Config{NATSCA: garbage}, "root certificate"},
		{"EVENTBUS_NATS_CERT", config.Config{NATSCert: missing, NATSKey: certs.ClientKey}, "cannot read " + missing},
		{"EVENTBUS_NATS_KEY", config.Config{NATSCert: certs.ClientCert, NATSKey: missing}, "cannot read " + missing},
		{"EVENTBUS_NATS_CERT", config.Config{NATSCert: certs.ClientCert, NATSKey: garbage}, "EVENTBUS_NATS_KEY"},
		{"EVENTBUS_NATS_CERT", config.Config{NATSCert: certs.ClientCert, NATSKey: certs.ServerKey}, "private key does not match"},
		{"EVENTBUS_NATS_NKEY", config.Config{NATSNkey: missing}, "cannot read"},
		{"EVENTBUS_NATS_NKEY", config.Config{NATSNkey: garbage}, garbage},
		{"EVENTBUS_NATS_CREDS", config.Config{NATSCreds: missing}, "cannot read"},
		{"EVENTBUS_NATS_CREDS", config.Config{NATSCreds: garbage}, "no user JWT"},
		{"EVENTBUS_NATS_CREDS", config.Config{NATSCreds: fakeCreds}, "no user JWT"},
	} {
		t.Run(tc.variable+"/"+tc.says, func(t *testing.T) {
			_, err := Options(tc.cfg)
			var ce *config.Error
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.variable, ce.Variable)
			assert.Contains(t, err.Error(), tc.says)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestCredsFileAccepted(t *testing.T) {
	user, err := nkeys.CreateUser()
	require.NoError(t, err)
	seed, err := user.Seed()
	require.NoError(t, err)
	// The JWT's content is the server's business; the file only needs its shape.
	creds := fmt.Appendf(nil, "-----BEGIN NATS USER JWT-----\n%s\n------END NATS USER JWT------\n\n"+
		"-----BEGIN USER NKEY SEED-----\n%s\n------END USER NKEY SEED------\n",
		"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln", seed)
	path := filepath.Join(t.TempDir(), "user.creds")
	require.NoError(t, os.WriteFile(path, creds, 0o600))
	opts, err := Options(config.Config{NATSCreds: path})
	require.NoError(t, err)
	assert.Len(t, opts, 1)
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                       "nats://127.0.0.1:4222",
		"nats://relay:s3cret@127.0.0.1:4222":          "nats://relay:xxxxx@127.0.0.1:4222",
		"nats://t0ken@127.0.0.1:4222":                 "nats://xxxxx@127.0.0.1:4222",
		"tls://a:p1@h1:4222, tls://a:p2@h2:4222":      "tls://a:xxxxx@h1:4222,tls://a:xxxxx@h2:4222",
		"nats://u:p%40ss@[::1]:4222":                  "nats://u:xxxxx@[::1]:4222",
		"nats://u:secret@host:port-is-not-a-number/x": "(invalid URL)",
	} {
		got := RedactURL(in)
		assert.Equal(t, want, got, in)
		for _, secret := range []string{"s3cret", "t0ken", "p1", "p2", "p%40ss", "secret"} {
			assert.NotContains(t, got, secret)
		}
	}
}

func TestRefused(t *testing.T) {
	assert.True(t, Refused(fmt.Errorf("connect: %w", nats.ErrAuthorization)))
	assert.True(t, Refused(&net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}))
	assert.False(t, Refused(nats.ErrNoServers))
	assert.False(t, Refused(&net.OpError{Op: "dial", Err: errors.New("connection refused")}))
	assert.False(t, Refused(nats.ErrTimeout))
}

// secureServer runs a NATS server that requires TLS (and a client
// certificate when verify) and the authentication configure sets.
func secureServer(t *testing.T, certs testcerts.Files, verify bool, configure func(*server.Options)) string {
	t.Helper()
	tlsConfig, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: certs.ServerCert, KeyFile: certs.ServerKey, CaFile: certs.CA, Verify: verify,
	})
	require.NoError(t, err)
	opts := &server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		TLS: true, TLSVerify: verify, TLSConfig: tlsConfig, TLSTimeout: 2,
	}
	configure(opts)
	srv, err := server.NewServer(opts)
	require.NoError(t, err)
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	require.True(t, srv.ReadyForConnections(10*time.Second))
	return fmt.Sprintf("nats://127.0.0.1:%d", srv.Addr().(*net.TCPAddr).Port)
}

func TestConnectsWithTLSAndNkey(t *testing.T) {
	certs := testcerts.Write(t)
	pub, seedFile := testcerts.NkeyUser(t)
	url := secureServer(t, certs, true, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} })

	cfg := config.Config{NATSURL: url, NATSNkey: seedFile, NATSCA: certs.CA, NATSCert: certs.ClientCert, NATSKey: certs.ClientKey}
	opts, err := Options(cfg)
	require.NoError(t, err)
	nc, err := nats.Connect(url, opts...)
	require.NoError(t, err)
	assert.True(t, nc.TLSRequired())
	nc.Close()

	// Each missing piece is refused, not an outage.
	other, err := nkeys.CreateUser()
	require.NoError(t, err)
	otherSeed, err := other.Seed()
	require.NoError(t, err)
	otherFile := filepath.Join(t.TempDir(), "other.nk")
	require.NoError(t, os.WriteFile(otherFile, otherSeed, 0o600))
	for name, c := range map[string]config.Config{
		"unknown nkey":   {NATSURL: url, NATSNkey: otherFile, NATSCA: certs.CA, NATSCert: certs.ClientCert, NATSKey: certs.ClientKey},
		"no CA":          {NATSURL: url, NATSNkey: seedFile, NATSCert: certs.ClientCert, NATSKey: certs.ClientKey},
		"no client cert": {NATSURL: url, NATSNkey: seedFile, NATSCA: certs.CA},
		"another CA":     {NATSURL: url, NATSNkey: seedFile, NATSCA: testcerts.Write(t).CA, NATSCert: certs.ClientCert, NATSKey: certs.ClientKey},
	} {
		t.Run(name, func(t *testing.T) {
			opts, err := Options(c)
			require.NoError(t, err)
			nc, err := nats.Connect(url, opts...)
			if err == nil {
				// With TLS 1.3 the server's verdict on the client
				// certificate arrives after the handshake.
				err = nc.Flush()
				nc.Close()
			}
			require.Error(t, err)
			assert.True(t, Refused(err), "refused: %v (%T)", err, err)
		})
	}
}

func TestWrongPasswordIsRefusedNoServerIsNot(t *testing.T) {
	certs := testcerts.Write(t)
	url := secureServer(t, certs, false, func(o *server.Options) {
		o.Username, o.Password = "relay", "right-password"
	})
	opts, err := Options(config.Config{NATSCA: certs.CA})
	require.NoError(t, err)
	withPassword := func(pw string) string { return strings.Replace(url, "nats://", "nats://relay:"+pw+"@", 1) }

	nc, err := nats.Connect(withPassword("right-password"), opts...)
	require.NoError(t, err)
	nc.Close()

	_, err = nats.Connect(withPassword("wrong-password"), opts...)
	require.Error(t, err)
	assert.True(t, Refused(err), "%v", err)
	assert.NotContains(t, err.Error(), "wrong-password")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	free := ln.Addr().String()
	require.NoError(t, ln.Close())
	_, err = nats.Connect("nats://"+free, nats.Timeout(time.Second))
	require.Error(t, err)
	assert.False(t, Refused(err), "%v", err)
}

// An error that happened while the connection was down names the server,
// without its password, and errors.Is still finds what it wraps.
func TestUnreachableWrapsErrorsOfADownConnection(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true})
	require.NoError(t, err)
	srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second))
	addr := srv.Addr().String()
	url := "nats://relay:secret-pw@" + addr
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(time.Hour))
	require.NoError(t, err)
	defer nc.Close()

	lookup := fmt.Errorf("look up stream EVENTBUS: %w", context.DeadlineExceeded)
	require.Same(t, lookup, Unreachable(t.Context(), nc, url, lookup), "connected: left alone")

	srv.Shutdown()
	srv.WaitForShutdown()
	require.Eventually(t, func() bool { return !nc.IsConnected() }, 10*time.Second, 10*time.Millisecond)
	err = Unreachable(t.Context(), nc, url, lookup)
	assert.EqualError(t, err, fmt.Sprintf("NATS at nats://relay:xxxxx@%s is unreachable: look up stream EVENTBUS: context deadline exceeded", addr))
	assert.ErrorIs(t, err, ErrUnreachable)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.Same(t, lookup, Unreachable(ctx, nc, url, lookup), "after the context ended: left alone")
}
