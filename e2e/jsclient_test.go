package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestJSClientAgainstRelay runs the vitest suite of clients/js
// (@eventbus/client: EventBusClient and the seed's React hooks, rendered with
// @testing-library/react in jsdom) against the real relay, Postgres and NATS:
// two organizations with an admin each, a member who is no admin, and an
// event that fails on every attempt; the JWTs are HS256, signed here with
// the relay's EVENTBUS_JWT_SECRET. Afterwards the database holds what the
// suite published, in the right organization, processed.
//
// Skipped without node or npm, unless EVENTBUS_REQUIRE_BROWSER=1 (CI).
func TestJSClientAgainstRelay(t *testing.T) {
	t.Parallel()
	dir := jsClient(t)
	r := startJSRelay(t)

	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "run", "--silent", "test") // vitest run
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append(r.vars(), "NO_COLOR=1", "FORCE_COLOR=0")...)
	cmd.WaitDelay = 10 * time.Second
	started := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("vitest ran %s:\n%s", time.Since(started).Round(100*time.Millisecond), out)
	require.NoError(t, err, "vitest run in %s", dir)
	assert.Regexp(t, `Tests\s+\d+ passed`, string(out))
	assert.NotRegexp(t, `\d+ (skipped|todo)`, string(out), "every test ran")

	// What the suite published through the API is organization A's,
	// stamped with the admin who published it, and ends processed.
	const published = `FROM public.event_bus WHERE (aggregate_type LIKE 'client-%' OR aggregate_type LIKE 'hooks-%')`
	var n, elsewhere int
	require.NoError(t, r.e.db.QueryRow(ctx, `SELECT count(*),
		count(*) FILTER (WHERE organization_id IS DISTINCT FROM $1::uuid OR metadata->>'published_by' IS DISTINCT FROM $2) `+published,
		r.orgA, r.adminA).Scan(&n, &elsewhere))
	assert.GreaterOrEqual(t, n, 10, "events the suite published")
	assert.Zero(t, elsewhere, "events in another organization or not stamped with their publisher")
	eventually(t, 30*time.Second, func() (bool, string) {
		var left int
		require.NoError(t, r.e.db.QueryRow(ctx, `SELECT count(*) `+published+` AND status IS DISTINCT FROM 'processed'`).Scan(&left))
		return left == 0, fmt.Sprintf("%d of the suite's events not processed", left)
	})
	// The replayed event is in the stream twice: delivered, then replayed.
	var replayed string
	require.NoError(t, r.e.db.QueryRow(ctx, `SELECT id::text `+published+` AND event_type = 'custom.event' AND aggregate_type LIKE 'client-publish-%'`).Scan(&replayed))
	copies := 0
	for _, m := range r.e.streamMessages() {
		if m.Body.ID == replayed {
			copies++
		}
	}
	assert.Equal(t, 2, copies, "stream messages of the replayed event %s", replayed)
	var retries int
	require.NoError(t, r.e.db.QueryRow(ctx, `SELECT retry_count FROM public.event_bus WHERE id = $1`, r.failing).Scan(&retries))
	assert.GreaterOrEqual(t, retries, 2, "the failing event was handed back and tried again")
}

// TestReactExampleInTheBrowser drives the React example (examples/react,
// built on @eventbus/client's hooks) in headless Chromium against the real
// relay: an httptest server serves the built app, a config.js with an
// organization admin's JWT, and the relay's /api behind the same origin (a
// reverse proxy, as a CRM's host would), so the page needs no CORS. The
// browser side is e2e/browser/client_example.test.mjs; afterwards the event
// the page published is in the database, the admin's organization's, and
// in the stream.
//
// Skipped without node, npm or chromium, unless EVENTBUS_REQUIRE_BROWSER=1.
func TestReactExampleInTheBrowser(t *testing.T) {
	t.Parallel()
	clientDir := jsClient(t)
	browserDir, node, chromium := browserTools(t)
	r := startJSRelay(t)
	ctx := t.Context()

	app := t.TempDir()
	build := exec.CommandContext(ctx, node, filepath.Join(clientDir, "..", "..", "examples", "react", "build.mjs"), app)
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build the example:\n%s", out)

	var mine, theirs string
	require.NoError(t, r.e.db.QueryRow(ctx, `SELECT public.publish_event('lead.qualified', 'lead', 'l-1', '{}', '{}', $1::uuid)::text`, r.orgA).Scan(&mine))
	require.NoError(t, r.e.db.QueryRow(ctx, `SELECT public.publish_event('lead.qualified', 'lead', 'l-2', '{}', '{}', $1::uuid)::text`, r.orgB).Scan(&theirs))
	relayURL, err := url.Parse("http://" + r.addr)
	require.NoError(t, err)
	config, err := json.Marshal(map[string]string{"url": "", "token": r.jwtA})
	require.NoError(t, err)
	mux := http.NewServeMux()
	proxy := httputil.NewSingleHostReverseProxy(relayURL)
	transport := &http.Transport{}
	proxy.Transport = transport
	t.Cleanup(transport.CloseIdleConnections)
	mux.Handle("/api/", proxy)
	mux.HandleFunc("GET /config.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprintf(w, "window.eventbusConfig = %s;\n", config)
	})
	mux.Handle("/", http.FileServer(http.Dir(app)))
	site := httptest.NewServer(mux)
	t.Cleanup(site.Close)

	shot := os.Getenv("EVENTBUS_EXAMPLE_SCREENSHOT")
	if shot == "" {
		shot = filepath.Join(t.TempDir(), "example.png")
	}
	runCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(runCtx, node, "client_example.test.mjs")
	cmd.Dir = browserDir
	cmd.Env = append(os.Environ(), "BASE_URL="+site.URL, "EVENT_ID="+mine, "OTHER_EVENT_ID="+theirs, "FAILING_ID="+r.failing,
		"CHROMIUM="+chromium, "SCREENSHOT="+shot, "FAILURE_SCREENSHOT="+filepath.Join(t.TempDir(), "failure.png"))
	cmd.WaitDelay = 10 * time.Second
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	started := time.Now()
	stdout, err := cmd.Output()
	t.Logf("browser script ran %s:\n%s", time.Since(started).Round(100*time.Millisecond), stderr.String())
	require.NoError(t, err, "browser script failed:\n%s", stderr.String())
	lines := strings.Fields(string(stdout))
	require.Len(t, lines, 3, "the script's output: %q", stdout)
	require.Equal(t, []string{"PUBLISHED", lines[1], "DONE"}, lines, "the script's output")
	published := lines[1]

	row := r.e.eventRow(ctx, published)
	assert.Equal(t, "processed", row.Status)
	var org, source, by string
	require.NoError(t, r.e.db.QueryRow(ctx, `SELECT organization_id::text, metadata->>'source', metadata->>'published_by'
		FROM public.event_bus WHERE id = $1`, published).Scan(&org, &source, &by))
	assert.Equal(t, []string{r.orgA, "examples/react", r.adminA}, []string{org, source, by})
	inStream := false
	for _, m := range r.e.streamMessages() {
		inStream = inStream || m.Body.ID == published
	}
	assert.True(t, inStream, "the published event is in the stream")
	if info, err := os.Stat(shot); assert.NoError(t, err, "screenshot") {
		assert.Greater(t, info.Size(), int64(10_000), "screenshot %s", shot)
	}
}

// jsRelay is a relay with the monitor's API on, and the users the client's
// tests sign in as.
type jsRelay struct {
	e                      *env
	addr                   string
	orgA, orgB             string
	adminA, adminB, member string
	jwtA, jwtB, jwtMember  string
	failing                string // an event of organization A that fails on every attempt
}

func (r *jsRelay) vars() []string {
	return []string{
		"EVENTBUS_TEST_URL=http://" + r.addr,
		"EVENTBUS_TEST_JWT=" + r.jwtA,
		"EVENTBUS_TEST_ADMIN_ID=" + r.adminA,
		"EVENTBUS_TEST_ORG=" + r.orgA,
		"EVENTBUS_TEST_JWT_OTHER_ORG=" + r.jwtB,
		"EVENTBUS_TEST_OTHER_ORG=" + r.orgB,
		"EVENTBUS_TEST_JWT_MEMBER=" + r.jwtMember,
		"EVENTBUS_TEST_FAILING_ID=" + r.failing,
	}
}

func startJSRelay(t *testing.T) *jsRelay {
	t.Helper()
	secret := randomHex(t, 32)
	r := &jsRelay{
		addr: freeAddr(t),
		orgA: "aaaaaaaa-0000-4000-8000-00000000000a", adminA: "aaaaaaaa-1111-4000-8000-00000000000a",
		member: "aaaaaaaa-2222-4000-8000-00000000000a",
		orgB:   "bbbbbbbb-0000-4000-8000-00000000000b", adminB: "bbbbbbbb-1111-4000-8000-00000000000b",
	}
	// One attempt per delivery: the failing event ends failed at once, and
	// again at once after each hand-back.
	r.e = setup(t, withEnv("EVENTBUS_HTTP_ADDR="+r.addr, "EVENTBUS_JWT_SECRET="+secret, "EVENTBUS_MAX_RETRIES=1",
		"EVENTBUS_WEBHOOK_ALLOW_PRIVATE=true"))
	r.e.startRelay()
	waitHTTP(t, 60*time.Second, r.addr, "/readyz", 200)
	ctx := t.Context()
	_, err := r.e.db.Exec(ctx, `INSERT INTO public.profiles (id, organization_id, role) VALUES
		($1, $2, 'admin'), ($3, $2, 'member'), ($4, $5, 'admin')`, r.adminA, r.orgA, r.member, r.adminB, r.orgB)
	require.NoError(t, err)
	r.jwtA, r.jwtB, r.jwtMember = hs256Token(t, secret, r.adminA), hs256Token(t, secret, r.adminB), hs256Token(t, secret, r.member)
	// An import wrote it straight into the table, with a type that is no
	// NATS subject: the relay fails it on every attempt.
	require.NoError(t, r.e.db.QueryRow(ctx, `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, organization_id)
		VALUES ('lead imported', 'lead', 'import-1', $1) RETURNING id::text`, r.orgA).Scan(&r.failing))
	eventually(t, 60*time.Second, func() (bool, string) {
		var st string
		_ = r.e.db.QueryRow(ctx, `SELECT status FROM public.event_bus WHERE id = $1`, r.failing).Scan(&st)
		return st == "failed", "the failing event is " + st
	})
	return r
}

var jsClientOnce struct {
	sync.Mutex
	built bool
}

// jsClient returns clients/js with its dependencies installed (npm ci when
// node_modules is missing or older than package-lock.json) and dist built
// and type-checked (tsc, once per test binary); it skips the test without node or npm, or
// fails it when EVENTBUS_REQUIRE_BROWSER=1.
func jsClient(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := fmt.Sprintf("%s not found: %v", tool, err)
			if os.Getenv("EVENTBUS_REQUIRE_BROWSER") == "1" {
				t.Fatalf("%s (EVENTBUS_REQUIRE_BROWSER=1)", msg)
			}
			t.Skipf("%s; install node 20 and npm to run the client's tests", msg)
		}
	}
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "clients", "js")
	jsClientOnce.Lock()
	defer jsClientOnce.Unlock()
	if jsClientOnce.built {
		return dir
	}
	lock, err := os.Stat(filepath.Join(dir, "package-lock.json"))
	require.NoError(t, err)
	installed, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json"))
	if errors.Is(err, os.ErrNotExist) || (err == nil && installed.ModTime().Before(lock.ModTime())) {
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = dir
		started := time.Now()
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "npm ci in %s:\n%s", dir, out)
		t.Logf("npm ci in %s: %s", dir, time.Since(started).Round(100*time.Millisecond))
	}
	// typecheck: the package, its tests and examples/react (vitest and
	// esbuild strip types without checking them).
	for _, script := range []string{"build", "typecheck"} {
		cmd := exec.Command("npm", "run", "--silent", script)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "npm run %s (tsc) in %s:\n%s", script, dir, out)
	}
	for _, f := range []string{"index.js", "index.d.ts", "client.js", "client.d.ts", "react.js", "react.d.ts"} {
		require.FileExists(t, filepath.Join(dir, "dist", f))
	}
	jsClientOnce.built = true
	return dir
}
