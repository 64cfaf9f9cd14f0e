package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
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

// TestMonitorInTheBrowser drives the Event Bus Monitor page (/crm/events) in
// headless Chromium against the real relay, Postgres and NATS: the page lists
// events delivered before it opened, shows leads inserted while it is open
// without a reload, filters by status, opens a failed event's detail, and
// after the event is fixed in the database, "Process pending" gets it
// redelivered. The browser side is e2e/browser/monitor.test.mjs
// (playwright-core with Debian's chromium); this test prepares the data,
// answers the script's requests for database work, and checks the database
// and the stream afterwards.
//
// Without node, npm or chromium the test is skipped, unless
// EVENTBUS_REQUIRE_BROWSER=1 (CI sets it), which makes that a failure. The
// screenshot goes to a temporary directory, or to EVENTBUS_MONITOR_SCREENSHOT
// when set (`EVENTBUS_MONITOR_SCREENSHOT=$PWD/docs/monitor.png` renews the
// README's picture).
func TestMonitorInTheBrowser(t *testing.T) {
	t.Parallel()
	dir, node, chromium := browserTools(t)

	const fixedType = "lead.imported"
	e, addr, token := startMonitor(t, "EVENTBUS_MAX_RETRIES=1")
	ctx := t.Context()

	// Before the page opens: leads created through the seed's trigger, two of
	// them moved to another status, and an event an import wrote straight into
	// the table with an event type that is no NATS subject: it fails on its
	// only attempt (EVENTBUS_MAX_RETRIES=1).
	var initial []string
	leads := e.insertLeads(ctx, "Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov")
	initial = append(initial, e.eventIDs(ctx, "lead.created", leads)...)
	for _, lead := range leads[:2] {
		_, err := e.db.Exec(ctx, `UPDATE public.leads SET status_id = gen_random_uuid() WHERE id = $1`, lead)
		require.NoError(t, err)
	}
	initial = append(initial, e.eventIDs(ctx, "lead.status_updated", leads[:2])...)
	var failed string
	require.NoError(t, e.db.QueryRow(ctx, `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, payload, metadata)
		VALUES ('lead imported', 'lead', $1, '{"source": "csv-import", "file": "leads-2026-11.csv", "line": 42}', '{"importer": "csv"}')
		RETURNING id::text`, leads[4]).Scan(&failed))
	e.waitStatuses(map[string]int{"processed": len(initial), "failed": 1}, 60*time.Second)

	shot := os.Getenv("EVENTBUS_MONITOR_SCREENSHOT")
	if shot == "" {
		shot = filepath.Join(t.TempDir(), "monitor.png")
	}
	runCtx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(runCtx, node, "monitor.test.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"BASE_URL=http://"+addr,
		"TOKEN="+token,
		"INITIAL_IDS="+strings.Join(initial, ","),
		"FAILED_ID="+failed,
		"FIXED_TYPE="+fixedType,
		"SCREENSHOT="+shot,
		"FAILURE_SCREENSHOT="+filepath.Join(t.TempDir(), "failure.png"),
		"CHROMIUM="+chromium,
	)
	cmd.WaitDelay = 10 * time.Second
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdoutR, stdoutW := io.Pipe()
	cmd.Stdout = stdoutW
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	started := time.Now()
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		stdoutW.Close()
		exited <- err
	}()
	t.Cleanup(func() {
		cancel()
		stdoutR.Close()
		<-exited
	})

	// The script's requests, one line each; see monitor.test.mjs.
	var added []string
	done := false
	lines := bufio.NewScanner(stdoutR)
	for lines.Scan() {
		line := lines.Text()
		t.Logf("browser script: %s", line)
		switch line {
		case "READY-FOR-LEADS":
			newLeads := e.insertLeads(ctx, "Katherine Johnson", "Donald Knuth", "Margaret Hamilton")
			added = e.eventIDs(ctx, "lead.created", newLeads)
			_, err = io.WriteString(stdin, "LEADS-INSERTED "+strings.Join(added, ",")+"\n")
		case "READY-TO-FIX":
			_, err = e.db.Exec(ctx, `UPDATE public.event_bus SET event_type = $2 WHERE id = $1`, failed, fixedType)
			require.NoError(t, err)
			_, err = io.WriteString(stdin, "FIXED\n")
		case "DONE":
			done = true
		default:
			err = fmt.Errorf("unexpected line from the browser script: %q", line)
		}
		if err != nil {
			cancel()
			t.Fatalf("%v\nscript stderr:\n%s", err, stderr.String())
		}
	}
	err = <-exited
	exited <- err // for the cleanup
	t.Logf("browser script ran %s", time.Since(started).Round(100*time.Millisecond))
	require.NoError(t, err, "browser script failed:\n%s", stderr.String())
	require.True(t, done, "browser script ended without DONE:\n%s", stderr.String())
	t.Logf("browser script stderr:\n%s", stderr.String())
	require.Len(t, added, 3, "the script asked for the new leads")

	// The database and the stream agree with what the page showed.
	r := e.eventRow(ctx, failed)
	assert.Equal(t, "processed", r.Status, "the fixed event was redelivered")
	assert.NotNil(t, r.ProcessedAt)
	want := map[string]bool{failed: true}
	for _, id := range append(initial, added...) {
		want[id] = true
	}
	e.waitStatuses(map[string]int{"processed": len(want)}, 30*time.Second)
	inStream := map[string]message{}
	for _, m := range e.streamMessages() {
		inStream[m.Body.ID] = m
	}
	for id := range want {
		assert.Contains(t, inStream, id, "event %s is in the stream", id)
	}
	if m, ok := inStream[failed]; assert.True(t, ok, "the redelivered event is in the stream") {
		assert.Equal(t, fixedType, m.Body.EventType)
		assert.True(t, strings.HasSuffix(m.Subject, "."+fixedType), "subject %s", m.Subject)
	}
	assert.Len(t, inStream, len(want), "nothing else was published")
	if info, err := os.Stat(shot); assert.NoError(t, err, "screenshot") {
		assert.Greater(t, info.Size(), int64(10_000), "screenshot %s", shot)
		t.Logf("screenshot: %s", shot)
	}
}

var browserInstall sync.Mutex

// browserTools returns e2e/browser with its node modules installed, node and
// chromium; it skips the test when a tool is missing, or fails it when
// EVENTBUS_REQUIRE_BROWSER=1.
func browserTools(t *testing.T) (dir, node, chromium string) {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("EVENTBUS_REQUIRE_BROWSER") == "1" {
			t.Fatalf("%s (EVENTBUS_REQUIRE_BROWSER=1)", msg)
		}
		t.Skipf("%s; install node, npm and Debian's chromium to run the browser test", msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node not found: %v", err)
	}
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "chromium"
	}
	if chromium, err = exec.LookPath(chromium); err != nil {
		missing("chromium not found: %v", err)
	}
	_, file, _, _ := runtime.Caller(0)
	dir = filepath.Join(filepath.Dir(file), "browser")
	// Parallel browser tests share e2e/browser: a second npm ci there would
	// delete the node_modules the first one is running from.
	browserInstall.Lock()
	defer browserInstall.Unlock()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); errors.Is(err, os.ErrNotExist) {
		npm, err := exec.LookPath("npm")
		if err != nil {
			missing("npm not found (needed to install playwright-core): %v", err)
		}
		cmd := exec.Command(npm, "ci", "--silent", "--no-audit", "--no-fund")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "npm ci in %s:\n%s", dir, out)
	}
	return dir, node, chromium
}

// runBrowserScript runs the script file of e2e/browser (dir) with node, its
// environment kv added to this process's, and fails the test unless it exits
// 0 within 3 minutes. It returns what the script wrote on stdout (its
// protocol lines); its progress, on stderr, is logged.
func runBrowserScript(t *testing.T, dir, node, file string, kv ...string) (stdout string) {
	t.Helper()
	runCtx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(runCtx, node, file)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), kv...)
	cmd.WaitDelay = 10 * time.Second
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	started := time.Now()
	out, err := cmd.Output()
	t.Logf("%s ran %s:\n%s", file, time.Since(started).Round(100*time.Millisecond), stderr.String())
	require.NoError(t, err, "%s failed:\n%s", file, stderr.String())
	return string(out)
}

// insertLeads inserts one lead per name, each in its own transaction (the
// seed's trigger publishes lead.created), and returns their ids.
func (e *env) insertLeads(ctx context.Context, names ...string) []string {
	e.t.Helper()
	ids := make([]string, len(names))
	for i, name := range names {
		first, last, _ := strings.Cut(name, " ")
		require.NoError(e.t, e.db.QueryRow(ctx, `INSERT INTO public.leads (first_name, last_name, phone, status_id, lead_source_id)
			VALUES ($1, $2, $3, gen_random_uuid(), gen_random_uuid()) RETURNING id::text`,
			first, last, fmt.Sprintf("+44 20 7946 %04d", 100+i)).Scan(&ids[i]))
	}
	return ids
}

// eventIDs returns the ids of the events of eventType for the given leads.
func (e *env) eventIDs(ctx context.Context, eventType string, leads []string) []string {
	e.t.Helper()
	var ids []string
	require.NoError(e.t, e.db.QueryRow(ctx, `SELECT coalesce(array_agg(id::text ORDER BY created_at), '{}')
		FROM public.event_bus WHERE event_type = $1 AND aggregate_id = ANY($2)`, eventType, leads).Scan(&ids))
	require.Len(e.t, ids, len(leads), "%s events of leads %v", eventType, leads)
	return ids
}
