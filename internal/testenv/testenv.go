// Package testenv gives tests the services they run against: a fresh
// PostgreSQL database on a cluster shared by the test package, a dedicated
// cluster for tests that restart PostgreSQL, an embedded NATS JetStream server
// (or cluster of them) per test, unique names for the objects a test creates,
// and a logger that writes to the test's log.
//
// The services come from packages pgcluster and natsserver, so tests see the
// configuration of the local dev environment. A test package that uses
// Postgres calls Main from its TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// Environment:
//
//   - EVENTBUS_TEST_DATABASE_URL: create the test databases on this server
//     (any database URL on it, as a superuser) instead of starting a cluster.
//   - EVENTBUS_TEST_PG_BINDIR: the bin directory (initdb, pg_ctl, postgres)
//     of the PostgreSQL version to test on, instead of the machine's own;
//     scripts/install-postgres.sh 14|15|16|17|18 installs one and prints it.
//   - EVENTBUS_TEST_NATS_URL: NATSURL returns it instead of starting a server.
//     Tests that shut NATS down and restart it use NATS, which always starts
//     a server of its own.
//   - EVENTBUS_TEST_NATS_SERVER: the path of a nats-server executable. NATS
//     and NATSCluster (and so NATSURL, and the e2e tests' servers) then run
//     it as a child process instead of embedding go.mod's server, to test
//     against another server version; scripts/install-nats-server.sh VERSION
//     builds one and prints its path. Unset, servers are embedded.
package testenv

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/eventbus/eventbus/internal/devstack/natsserver"
	"github.com/eventbus/eventbus/internal/devstack/pgcluster"
)

// Environment variables that point tests at existing services.
const (
	DatabaseURLEnv = "EVENTBUS_TEST_DATABASE_URL"
	PGBinDirEnv    = "EVENTBUS_TEST_PG_BINDIR"
	NATSURLEnv     = "EVENTBUS_TEST_NATS_URL"
	NATSServerEnv  = "EVENTBUS_TEST_NATS_SERVER"
)

// NATSServer returns EVENTBUS_TEST_NATS_SERVER: the nats-server executable
// the tests' servers run (natsserver.Options.Binary), empty to embed the
// server. Tests that start servers with natsserver directly pass it on.
func NATSServer() string { return os.Getenv(NATSServerEnv) }

// SeedSQL creates the seed's design (event_bus, its functions, triggers and
// policies, with Supabase's auth.uid(), profiles and leads) in an empty
// database, for tests of `eventbus migrate` adopting it.
//
//go:embed seed.sql
var SeedSQL string

// cleanupTimeout bounds the work a t.Cleanup does against a service.
const cleanupTimeout = 30 * time.Second

// shared is the package's PostgreSQL cluster, started by the first call to
// Postgres and stopped by Main.
var shared struct {
	mu  sync.Mutex
	pg  *pgcluster.Cluster
	err error // a failed start is not retried: every test reports it
}

// Main runs the tests, stops the shared PostgreSQL cluster if one was started,
// checks that no goroutine outlived the tests (goleak; opts ignore known ones),
// and exits with the result. Call it from TestMain.
func Main(m *testing.M, opts ...goleak.Option) {
	code := m.Run()

	shared.mu.Lock()
	if shared.pg != nil {
		if err := shared.pg.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: stop shared postgres: %v\n", err)
			code = max(code, 1)
		}
		shared.pg = nil
	}
	shared.mu.Unlock()

	// Like goleak.VerifyTestMain, whose m.Run we cannot share. Leaks are only
	// worth reporting when the tests passed: a failed test may leave anything.
	if code == 0 {
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Postgres returns the URL of a new database, uniquely named, on the test
// package's shared cluster, or on the server of EVENTBUS_TEST_DATABASE_URL
// when set. The database, its connections and its replication slots are
// dropped when the test ends.
func Postgres(t testing.TB) string {
	t.Helper()
	serverURL := os.Getenv(DatabaseURLEnv)
	if serverURL == "" {
		serverURL = sharedPostgres(t).URL("postgres")
	}
	name := UniqueName(t, "db")
	url, err := pgcluster.CreateDatabase(t.Context(), serverURL, name)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := pgcluster.DropDatabase(ctx, serverURL, name); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return url
}

func sharedPostgres(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.pg == nil && shared.err == nil {
		// Not t.Context: the cluster outlives the test that starts it.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.pg, shared.err = pgcluster.Start(ctx, pgcluster.Options{Fast: true, BinDir: os.Getenv(PGBinDirEnv)})
	}
	if shared.err != nil {
		t.Fatalf("testenv: start shared postgres: %v", shared.err)
	}
	return shared.pg
}

// NewPostgres starts a cluster of the test's own, for tests that restart or
// stop PostgreSQL; it is stopped when the test ends. Create databases on it
// with its CreateDatabase, or use URL("postgres").
func NewPostgres(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	pg, err := pgcluster.Start(t.Context(), pgcluster.Options{Fast: true, BinDir: os.Getenv(PGBinDirEnv), Log: Logger(t)})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := pg.Stop(); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return pg
}

// NATS starts a NATS server with JetStream for the test, storing in a temp
// dir, and shuts it down when the test ends: embedded, or the binary of
// EVENTBUS_TEST_NATS_SERVER as a child process. It ignores
// EVENTBUS_TEST_NATS_URL: tests that call it may shut the server down and
// restart it, which they cannot do to a server they do not own.
//
// The server keeps JetStream's default sync interval, not the dev
// environment's sync_interval always: a server in the test process loses
// nothing it acknowledged when the test stops it (its writes are in the
// page cache), so fsyncing each one would only slow the tests down (a burst
// of 6,000 events took several times as long to deliver).
func NATS(t testing.TB) *natsserver.Server {
	t.Helper()
	n, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir(), Binary: NATSServer(), Log: Logger(t)})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(n.Shutdown)
	return n
}

// NATSCluster starts a JetStream cluster of size servers for the test
// (natsserver.StartCluster), storing in a temp dir, and shuts every node
// down when the test ends. Like NATS, it keeps the default sync interval,
// runs EVENTBUS_TEST_NATS_SERVER when set and ignores EVENTBUS_TEST_NATS_URL.
func NATSCluster(t testing.TB, size int) *natsserver.Cluster {
	t.Helper()
	c, err := natsserver.StartCluster(size, natsserver.ClusterOptions{StoreDir: t.TempDir(), Binary: NATSServer(), Log: Logger(t)})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(c.Shutdown)
	return c
}

// NATSURL returns EVENTBUS_TEST_NATS_URL when set, else the URL of a server
// started with NATS. Tests that share a server isolate themselves by stream
// and subject names (UniqueName).
func NATSURL(t testing.TB) string {
	t.Helper()
	if url := os.Getenv(NATSURLEnv); url != "" {
		return url
	}
	return NATS(t).URL()
}

// maxNameLen keeps names well inside PostgreSQL's 63-byte identifiers.
const maxNameLen = 40

var nameSeq atomic.Uint64

// UniqueName returns a name made of prefix, the test's name and a suffix
// unique to this call (a process-wide counter and random bytes, so parallel
// test processes sharing a server do not collide). It has at most 40
// characters from [a-z0-9_] and starts with a letter: valid unquoted for
// databases, replication slots and publications, and for NATS streams once
// upper-cased.
func UniqueName(t testing.TB, prefix string) string {
	t.Helper()
	var random [3]byte
	_, _ = rand.Read(random[:]) // never fails
	suffix := strconv.FormatUint(nameSeq.Add(1), 36) + hex.EncodeToString(random[:])

	prefix = sanitize(prefix)
	if prefix == "" || prefix[0] < 'a' || prefix[0] > 'z' {
		prefix = "t" + prefix
	}
	prefix = prefix[:min(len(prefix), 12)]
	test := sanitize(strings.TrimPrefix(t.Name(), "Test"))
	test = strings.TrimRight(test[:min(len(test), maxNameLen-len(prefix)-len(suffix)-2)], "_")
	if test == "" {
		return prefix + "_" + suffix
	}
	return prefix + "_" + test + "_" + suffix
}

// sanitize lowercases s and replaces each run of characters outside
// [a-z0-9] with one underscore, trimmed at both ends.
func sanitize(s string) string {
	var b strings.Builder
	underscore := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if underscore && b.Len() > 0 {
				b.WriteByte('_')
			}
			underscore = false
			b.WriteRune(r)
		} else {
			underscore = true
		}
	}
	return b.String()
}

// Logger returns a logger that writes to the test's log, at debug level.
// Like t.Log, it must not be used after the test has ended.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Eventually polls cond every 50ms until it holds, and fails the test with
// cond's last message once timeout has passed: the one way tests wait for
// another process, never by sleeping a fixed time.
func Eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %s", timeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
