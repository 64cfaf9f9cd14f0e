// Package e2e tests the eventbus binary as users run it: a real PostgreSQL
// cluster with wal_level=logical and a real NATS JetStream server, both
// started by the tests, and the relay as a subprocess that the tests kill,
// stop and restart.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/devstack/natsserver"
	"github.com/eventbus/eventbus/internal/devstack/pgcluster"
	"github.com/eventbus/eventbus/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// built is a binary built once per test process.
type built struct {
	once sync.Once
	path string
	err  error
}

// builds holds the binaries built by this test process: ./cmd/eventbus with
// the race detector (what most tests run) and without (the relay at full
// speed), and ./cmd/eventbus-dev.
var builds struct {
	race, fast, dev built
}

// binary builds ./cmd/eventbus with the race detector, once per test process.
func binary(t *testing.T) string { return builds.race.get(t, "./cmd/eventbus", true) }

// fastBinary builds ./cmd/eventbus without the race detector: the relay at
// full speed, as deployed. Some races with Postgres only show when the relay
// is fast (see TestManyConcurrentWritersAllDelivered).
func fastBinary(t *testing.T) string { return builds.fast.get(t, "./cmd/eventbus", false) }

// devBinary builds ./cmd/eventbus-dev (make run) with the race detector.
func devBinary(t *testing.T) string { return builds.dev.get(t, "./cmd/eventbus-dev", true) }

func (b *built) get(t *testing.T, pkg string, race bool) string {
	t.Helper()
	b.once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		dir, err := os.MkdirTemp("", "eventbus-e2e-bin")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, filepath.Base(pkg))
		args := []string{"build", "-o", b.path}
		if race {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Dir = filepath.Dir(filepath.Dir(file))
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	require.NoError(t, b.err)
	return b.path
}

// env is what one test runs against: a database, a NATS server, and names
// unique to the test.
type env struct {
	t        *testing.T
	bin      string
	dbURL    string
	db       *pgxpool.Pool
	nats     *natsserver.Server  // nil with withNATSCluster
	cluster  *natsserver.Cluster // set by withNATSCluster
	slot     string
	pub      string
	stream   string
	extraEnv []string
}

type option func(*setupOptions)

type setupOptions struct {
	pg         *pgcluster.Cluster // a dedicated cluster instead of the shared one
	standbys   []*pgcluster.Cluster
	cluster    *natsserver.Cluster
	maxPayload int32
	env        []string
	preMigrate string // SQL run on the new database before `eventbus migrate`
}

func withPostgres(pg *pgcluster.Cluster) option { return func(o *setupOptions) { o.pg = pg } }
func withMaxPayload(n int32) option             { return func(o *setupOptions) { o.maxPayload = n } }
func withEnv(kv ...string) option               { return func(o *setupOptions) { o.env = append(o.env, kv...) } }

// withStandbys makes the database URL name pg (see withPostgres) and then
// each standby, with target_session_attrs=read-write: the relay, the CLI,
// the writers and the test's pool all follow a promotion to whichever server
// takes writes.
func withStandbys(standbys ...*pgcluster.Cluster) option {
	return func(o *setupOptions) { o.standbys = append(o.standbys, standbys...) }
}

// withNATSCluster points the relay and the stream helpers at a NATS cluster
// (all its URLs) instead of starting a server for the test.
func withNATSCluster(c *natsserver.Cluster) option {
	return func(o *setupOptions) { o.cluster = c }
}

// withSQLBeforeMigrate runs sql on the new database before `eventbus
// migrate`, giving the migration an existing database to adopt.
func withSQLBeforeMigrate(sql string) option { return func(o *setupOptions) { o.preMigrate = sql } }

// setup creates a database, migrates it with `eventbus migrate`, and starts
// a NATS server (unless withNATSCluster): embedded, or the nats-server of
// EVENTBUS_TEST_NATS_SERVER. The relay is not started.
func setup(t *testing.T, opts ...option) *env {
	t.Helper()
	var o setupOptions
	for _, opt := range opts {
		opt(&o)
	}
	e := &env{
		t:        t,
		bin:      binary(t),
		slot:     testenv.UniqueName(t, "slot"),
		pub:      testenv.UniqueName(t, "pub"),
		extraEnv: o.env,
	}
	e.stream = "S" + e.slot
	if o.pg != nil {
		name := testenv.UniqueName(t, "db")
		url, err := o.pg.CreateDatabase(t.Context(), name)
		require.NoError(t, err)
		e.dbURL = url
		if len(o.standbys) > 0 {
			e.dbURL = multiHostURL(name, append([]*pgcluster.Cluster{o.pg}, o.standbys...))
		}
	} else {
		e.dbURL = testenv.Postgres(t)
	}
	if o.cluster != nil {
		e.cluster = o.cluster
	} else {
		ns, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir(), MaxPayload: o.maxPayload, Binary: testenv.NATSServer()})
		require.NoError(t, err)
		t.Cleanup(ns.Shutdown)
		e.nats = ns
	}

	if o.preMigrate != "" {
		conn, err := pgx.Connect(t.Context(), e.dbURL)
		require.NoError(t, err)
		_, err = conn.Exec(t.Context(), o.preMigrate)
		require.NoError(t, errors.Join(err, conn.Close(t.Context())), "SQL before migrate")
	}

	out, err := e.command("migrate").CombinedOutput()
	require.NoError(t, err, "eventbus migrate: %s", out)

	e.db, err = pgxpool.New(t.Context(), e.dbURL)
	require.NoError(t, err)
	t.Cleanup(e.db.Close)
	// Drop the slot when the test ends: slots are cluster-wide.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = e.db.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, e.slot)
	})
	return e
}

// multiHostURL is a libpq multi-host URL of database on servers, for the
// read-write one among them.
func multiHostURL(database string, servers []*pgcluster.Cluster) string {
	hosts := make([]string, len(servers))
	for i, pg := range servers {
		hosts[i] = fmt.Sprintf("127.0.0.1:%d", pg.Port())
	}
	return "postgres://postgres@" + strings.Join(hosts, ",") + "/" + database + "?sslmode=disable&target_session_attrs=read-write"
}

// natsURL is what the relay and the stream helpers connect to: the test's
// server, or every node of its cluster.
func (e *env) natsURL() string {
	if e.cluster != nil {
		return e.cluster.URL()
	}
	return e.nats.URL()
}

// environ is the relay's environment for this test.
func (e *env) environ() []string {
	return append(append(os.Environ(),
		"EVENTBUS_DATABASE_URL="+e.dbURL,
		"EVENTBUS_NATS_URL="+e.natsURL(),
		"EVENTBUS_SLOT="+e.slot,
		"EVENTBUS_PUBLICATION="+e.pub,
		"EVENTBUS_STREAM="+e.stream,
		"EVENTBUS_HTTP_ADDR=",
		"EVENTBUS_LOG_FORMAT=text",
		"EVENTBUS_LOG_LEVEL=debug",
	), e.extraEnv...)
}

func (e *env) command(args ...string) *exec.Cmd {
	cmd := exec.Command(e.bin, args...)
	cmd.Env = e.environ()
	return cmd
}

// relayProc is a running `eventbus run`.
type relayProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startRelay starts `eventbus run`; the test's cleanup kills it if still
// running and logs its output when the test failed.
func (e *env) startRelay() *relayProc {
	e.t.Helper()
	return e.startRelayEnv()
}

// startRelayEnv is startRelay with variables (KEY=value) added to, or
// overriding, the test's environment for this process only.
func (e *env) startRelayEnv(kv ...string) *relayProc {
	e.t.Helper()
	return e.startCommand("run", kv...)
}

// startCommand starts `eventbus <command>` with variables added to the
// test's environment; the test's cleanup kills it if still running and logs
// its output when the test failed.
func (e *env) startCommand(command string, kv ...string) *relayProc {
	e.t.Helper()
	p := &relayProc{t: e.t, cmd: e.command(command), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(p.cmd.Env, kv...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(e.t, p.cmd.Start())
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	e.t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if e.t.Failed() {
			e.t.Logf("eventbus %s output:\n%s", command, p.out.String())
		}
	})
	return p
}

// kill sends SIGKILL and waits for the process to end.
func (p *relayProc) kill() {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.done
}

// stop sends SIGTERM and returns the exit code.
func (p *relayProc) stop() int {
	p.t.Helper()
	return p.stopWith(syscall.SIGTERM, 30*time.Second)
}

// stopWith sends sig, waits at most timeout for the process to exit and
// returns the exit code.
func (p *relayProc) stopWith(sig os.Signal, timeout time.Duration) int {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(sig))
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("%s did not stop within %s after %v:\n%s", p.cmd.Path, timeout, sig, p.out.String())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	require.NoError(p.t, p.err)
	return 0
}

// publish inserts an event through publish_event and returns its id.
func (e *env) publish(ctx context.Context, eventType, aggregateID, payload string) string {
	e.t.Helper()
	var id string
	require.NoError(e.t, e.db.QueryRow(ctx,
		`SELECT public.publish_event($1, 'test', $2, $3::jsonb, '{"source":"e2e"}'::jsonb, NULL)::text`,
		eventType, aggregateID, payload).Scan(&id))
	return id
}

// statusCounts returns the number of rows by status.
func (e *env) statusCounts() map[string]int {
	e.t.Helper()
	rows, err := e.db.Query(e.t.Context(), `SELECT coalesce(status, 'null'), count(*) FROM public.event_bus GROUP BY 1`)
	require.NoError(e.t, err)
	defer rows.Close()
	counts := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		require.NoError(e.t, rows.Scan(&s, &n))
		counts[s] = n
	}
	require.NoError(e.t, rows.Err())
	return counts
}

// waitProcessed waits until n rows are processed and none is pending.
func (e *env) waitProcessed(n int, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c := e.statusCounts()
		if c["processed"] == n && c["pending"] == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("after %s: statuses %v, want %d processed; %s", timeout, c, n, e.diagnose())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// diagnose describes the rows not processed yet and the slot, for failure messages.
func (e *env) diagnose() string {
	ctx := e.t.Context()
	var b bytes.Buffer
	rows, err := e.db.Query(ctx, `SELECT id::text, aggregate_id, created_at, xmin::text, status, coalesce(retry_count, 0)
		FROM public.event_bus WHERE status <> 'processed' ORDER BY created_at LIMIT 10`)
	if err == nil {
		for rows.Next() {
			var id, agg, xmin, status string
			var created time.Time
			var retries int
			if rows.Scan(&id, &agg, &created, &xmin, &status, &retries) == nil {
				fmt.Fprintf(&b, "\n  %s row %s aggregate %s created %s xmin %s retries %d", status, id, agg, created.Format(time.RFC3339Nano), xmin, retries)
			}
		}
		rows.Close()
	}
	if b.Len() > 0 {
		inStream := map[string]bool{}
		for _, m := range e.streamMessages() {
			inStream[m.Body.ID] = true
		}
		rows, err := e.db.Query(ctx, `SELECT id::text FROM public.event_bus WHERE status <> 'processed' ORDER BY created_at LIMIT 10`)
		if err == nil {
			for rows.Next() {
				var id string
				if rows.Scan(&id) == nil {
					fmt.Fprintf(&b, "\n  %s in stream: %v", id, inStream[id])
				}
			}
			rows.Close()
		}
	}
	var slot string
	if e.db.QueryRow(ctx, `SELECT format('slot active=%s confirmed=%s current=%s', active, confirmed_flush_lsn, pg_current_wal_lsn())
		FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&slot) == nil {
		fmt.Fprintf(&b, "\n  %s", slot)
	}
	return b.String()
}

// waitSlotActive waits until a walsender streams from the test's slot
// (active) or none does (!active); a slot not created yet counts as inactive.
// Streaming means the walsender has started replication (pg_stat_replication
// state catchup or streaming): a slot is also active for a moment while it is
// being created, before the session that streams from it takes it.
func (e *env) waitSlotActive(active bool) {
	e.t.Helper()
	eventually(e.t, 30*time.Second, func() (bool, string) {
		var got bool
		var state string
		require.NoError(e.t, e.db.QueryRow(e.t.Context(),
			`SELECT coalesce(s.active, false), coalesce(r.state, '')
			FROM (SELECT $1::name AS slot_name) want
			LEFT JOIN pg_replication_slots s USING (slot_name)
			LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid`, e.slot).Scan(&got, &state))
		streaming := got && (state == "streaming" || state == "catchup")
		if active {
			return streaming, fmt.Sprintf("slot %s active = %v, walsender state %q, want streaming", e.slot, got, state)
		}
		return !got, fmt.Sprintf("slot %s active = %v, want inactive", e.slot, got)
	})
}

// eventually polls cond until it holds or timeout passes (testenv.Eventually).
func eventually(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	testenv.Eventually(t, timeout, cond)
}

// message is one message read back from the stream.
type message struct {
	Subject string
	Header  nats.Header
	Body    body
	Raw     []byte
	// Seq and Stored are where and when the stream stored it.
	Seq    uint64
	Stored time.Time
}

type body struct {
	ID             string          `json:"id"`
	EventType      string          `json:"event_type"`
	AggregateType  string          `json:"aggregate_type"`
	AggregateID    string          `json:"aggregate_id"`
	OrganizationID *string         `json:"organization_id"`
	Payload        json.RawMessage `json:"payload"`
	Metadata       json.RawMessage `json:"metadata"`
	CreatedAt      string          `json:"created_at"`
}

// streamMessages reads every message of the test's stream, in stream order.
func (e *env) streamMessages() []message {
	e.t.Helper()
	var msgs []message
	e.eachStreamMessage(func(m jetstream.Msg) {
		var b body
		require.NoError(e.t, json.Unmarshal(m.Data(), &b), "body %s", m.Data())
		md, err := m.Metadata()
		require.NoError(e.t, err)
		msgs = append(msgs, message{Subject: m.Subject(), Header: m.Headers(), Body: b, Raw: m.Data(), Seq: md.Sequence.Stream, Stored: md.Timestamp})
	})
	return msgs
}

// eachStreamMessage calls fn with every message of the test's stream, in
// stream order.
func (e *env) eachStreamMessage(fn func(jetstream.Msg)) {
	e.t.Helper()
	nc, err := nats.Connect(e.natsURL())
	require.NoError(e.t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(e.t, err)
	ctx, cancel := context.WithTimeout(e.t.Context(), 60*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, e.stream)
	require.NoError(e.t, err)
	info, err := s.Info(ctx)
	require.NoError(e.t, err)
	total := int(info.State.Msgs)
	if total == 0 {
		return
	}
	// A long soak leaves hundreds of thousands of messages to read.
	ctx, cancelRead := context.WithTimeout(e.t.Context(), 60*time.Second+time.Duration(total/2000)*time.Second)
	defer cancelRead()
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	require.NoError(e.t, err)
	// An ordered consumer that resets (in a cluster, after a leader change)
	// can hand over a message again: what counts is the stream sequence,
	// each once.
	var last uint64
	for n := 0; n < total; {
		batch, err := c.Fetch(min(total-n, 1000), jetstream.FetchMaxWait(5*time.Second))
		require.NoError(e.t, err)
		got, fetched := 0, 0
		for m := range batch.Messages() {
			fetched++
			md, err := m.Metadata()
			require.NoError(e.t, err)
			if md.Sequence.Stream <= last {
				continue
			}
			last = md.Sequence.Stream
			got++
			fn(m)
		}
		n += got
		// In a cluster, a pull may reach the client's server before the
		// interest of the consumer (new, or recreated by a reset) has, or
		// lose it midway: fetch again, from where the consumer is.
		if err := batch.Error(); errors.Is(err, nats.ErrNoResponders) && ctx.Err() == nil {
			if fetched == 0 {
				time.Sleep(50 * time.Millisecond)
			}
			continue
		}
		require.NoError(e.t, batch.Error())
		require.NotZero(e.t, fetched, "no messages fetched; have %d of %d", n, total)
	}
}

// streamCount is the number of messages the stream holds.
func (e *env) streamCount() int {
	e.t.Helper()
	nc, err := nats.Connect(e.natsURL())
	require.NoError(e.t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(e.t, err)
	s, err := js.Stream(e.t.Context(), e.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0
	}
	require.NoError(e.t, err)
	info, err := s.Info(e.t.Context())
	require.NoError(e.t, err)
	return int(info.State.Msgs)
}
