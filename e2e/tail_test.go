package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lineProc is a running command whose stdout the test reads line by line:
// `eventbus tail`, or the example consumer.
type lineProc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	lines  chan string
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

// startTail starts `eventbus tail args...` and waits until it says it is
// tailing: from then on, every event stored is printed.
func (e *env) startTail(args ...string) *lineProc {
	e.t.Helper()
	return startLines(e.t, "eventbus tail", e.command(append([]string{"tail"}, args...)...), "tailing ")
}

// startLines starts cmd and waits until its stderr contains ready.
func startLines(t *testing.T, name string, cmd *exec.Cmd, ready string) *lineProc {
	t.Helper()
	p := &lineProc{t: t, name: name, cmd: cmd, lines: make(chan string, 1000), stderr: &syncBuffer{}, done: make(chan struct{})}
	stdout, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	p.cmd.Stderr = p.stderr
	require.NoError(t, p.cmd.Start())
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.err = p.cmd.Wait() // after the last read from the pipe
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, p.stderr.String())
		}
	})
	eventually(t, 30*time.Second, func() (bool, string) {
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v):\n%s", name, p.err, p.stderr.String())
		default:
		}
		return strings.Contains(p.stderr.String(), ready), name + " not ready: " + p.stderr.String()
	})
	return p
}

// next returns the next line the process printed.
func (p *lineProc) next() string {
	p.t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			<-p.done
			p.t.Fatalf("%s exited (%v):\n%s", p.name, p.err, p.stderr.String())
		}
		return l
	case <-time.After(30 * time.Second):
		p.t.Fatalf("no line from %s within 30s:\n%s", p.name, p.stderr.String())
		return ""
	}
}

// stop sends SIGTERM and returns the exit code.
func (p *lineProc) stop() int {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Fatalf("%s did not stop within 10s after SIGTERM:\n%s", p.name, p.stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	require.NoError(p.t, p.err)
	return 0
}

func TestTailPrintsNewEventsAsJSONLines(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	e.startRelay()
	e.warmUp() // stored before tail starts: not shown

	tail := e.startTail("--json")
	ids := []string{
		e.publish(ctx, "lead.created", "l-1", `{"first_name": "John", "tags": [1, 2]}`),
		e.publish(ctx, "payment.completed", "p-1", `{"amount": 10}`),
		e.publish(ctx, "lead.status_updated", "l-1", `{}`),
	}
	var lines []string
	for range ids {
		lines = append(lines, tail.next())
	}
	e.waitProcessed(4, 30*time.Second)
	stored := e.streamMessages()[1:]
	for i, l := range lines {
		var b body
		require.NoError(t, json.Unmarshal([]byte(l), &b), "line %d is one JSON object: %s", i, l)
		assert.Equal(t, ids[i], b.ID, "line %d, in commit order", i)
		assert.Equal(t, string(stored[i].Raw), l, "line %d is the message body as stored", i)
	}
	require.Equal(t, 0, tail.stop(), "exit code after SIGTERM")
}

func TestTailFiltersByEventTypeAndStartsAtSince(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	e.startRelay()
	e.warmUp()
	before := e.publish(ctx, "lead.created", "l-1", `{"n": 1}`)
	e.publish(ctx, "other.type", "o-1", `{}`)
	e.waitProcessed(3, 30*time.Second)

	// The filter gets the subject prefix; flags may follow it.
	tail := e.startTail("lead.created", "--since", "1h")
	e.publish(ctx, "lead.status_updated", "l-1", `{}`)
	e.publish(ctx, "other.type", "o-2", `{}`)
	after := e.publish(ctx, "lead.created", "l-2", `{"n": 2}`)

	for _, want := range []struct{ id, aggregate, payload string }{
		{before, "test/l-1", `{"n":1}`},
		{after, "test/l-2", `{"n":2}`},
	} {
		fields := strings.Fields(tail.next())
		require.Len(t, fields, 5, "time, subject, id, aggregate, payload")
		_, err := time.Parse(time.RFC3339Nano, fields[0])
		assert.NoError(t, err, "the line starts with the event's time")
		assert.Equal(t, []string{"events.lead.created", want.id, want.aggregate, want.payload}, fields[1:])
	}
	require.Equal(t, 0, tail.stop(), "exit code after SIGTERM")
}

func TestTailBadFilterIsAUsageError(t *testing.T) {
	t.Parallel()
	bin := binary(t)
	for _, args := range [][]string{
		{"tail", "lead.>.created"},
		{"tail", "lead.cre*"},
		{"tail", "lead.created", "other.type"},
		{"tail", "--since", "yesterday"},
	} {
		r := runCLI(t, bin, unreachableEnviron(), args...)
		require.Equal(t, 2, r.code, "%v: %s", args, r)
		requireOneLine(t, r.stderr, "eventbus tail")
	}
}
