package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// supervisor keeps `eventbus run` running while the services stay up: a
// relay that exits by itself (a crash, kill -9, an exit after a fatal error)
// is started again after a backoff that doubles from backoff to maxBackoff
// (back to backoff once a relay ran for window), until crashes exits fall
// within window. A relay that exits with code 2 (bad configuration) is not
// restarted: it would only fail the same way.
type supervisor struct {
	command    func() *exec.Cmd // a new `eventbus run`
	log        *slog.Logger
	backoff    time.Duration
	maxBackoff time.Duration
	crashes    int
	window     time.Duration
}

// run runs the relay until ctx ends (then it stops it and returns nil, or
// an error when the relay did not stop cleanly) or the relay is given up on.
func (s supervisor) run(ctx context.Context) error {
	var recent []time.Time // exits within window
	wait := s.backoff
	for {
		started := time.Now()
		st, err := runChild(ctx, s.command(), func(pid int) { s.log.Info("relay started", "pid", pid) })
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			if !st.Success() {
				return fmt.Errorf("eventbus run %s while stopping", describeExit(st))
			}
			return nil
		}
		how := "relay " + describeExit(st)
		if st.ExitCode() == 2 {
			return fmt.Errorf("%s (bad configuration: see its line above); not restarting", how)
		}
		now := time.Now()
		recent = append(slices.DeleteFunc(recent, func(t time.Time) bool { return now.Sub(t) >= s.window }), now)
		if len(recent) >= s.crashes {
			return fmt.Errorf("%s: %d exits within %s; not restarting", how, len(recent), s.window)
		}
		if now.Sub(started) >= s.window {
			wait = s.backoff
		}
		s.log.Warn(how+"; restarting", "in", wait.String())
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil
		}
		wait = min(2*wait, s.maxBackoff)
	}
}

// command returns `bin args…` with env and this process's output, in a
// process group of its own: a Ctrl-C in the terminal then reaches only
// eventbus-dev, which stops the relay before the services it needs.
func command(bin string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// stopTimeout is how long a child may take to stop after SIGTERM before it is
// killed; the relay drains its acks in EVENTBUS_SHUTDOWN_TIMEOUT (15 s).
const stopTimeout = 30 * time.Second

// runChild starts cmd and waits until it exits; started, when set, is told its
// pid. When ctx ends first, cmd gets SIGTERM, and SIGKILL after stopTimeout.
// The error is for a child that could not be started; how it exited is in the
// returned state.
func runChild(ctx context.Context, cmd *exec.Cmd, started func(pid int)) (*os.ProcessState, error) {
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w (build it with: go build -o bin/eventbus ./cmd/eventbus)", cmd.Path, err)
	}
	if started != nil {
		started(cmd.Process.Pid)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // a non-zero exit is in cmd.ProcessState
		close(done)
	}()
	select {
	case <-done:
		return cmd.ProcessState, nil
	case <-ctx.Done():
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(stopTimeout):
		_ = cmd.Process.Kill()
		<-done
	}
	return cmd.ProcessState, nil
}

// describeExit says how a process ended: "exited with code 1", "killed by
// signal KILL".
func describeExit(st *os.ProcessState) string {
	ws, ok := st.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return fmt.Sprintf("exited with code %d", st.ExitCode())
	}
	name := strings.TrimPrefix(unix.SignalName(ws.Signal()), "SIG")
	if name == "" {
		name = ws.Signal().String()
	}
	return "killed by signal " + name
}
