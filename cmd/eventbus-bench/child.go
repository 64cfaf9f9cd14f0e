package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// child is a process the bench runs and measures: the relay, or the
// baseline's poller.
type child struct {
	name    string
	cmd     *exec.Cmd
	started time.Time // just before the process was started
	done    chan error
	log     string
}

// startChild starts cmd with its stderr, and its stdout unless set, appended
// to the log file logPath.
func startChild(name string, cmd *exec.Cmd, logPath string) (*child, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own descriptor
	if cmd.Stdout == nil {
		cmd.Stdout = f
	}
	cmd.Stderr = f
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s %s: %w", name, cmd.Path, err)
	}
	c := &child{name: name, cmd: cmd, started: started, done: make(chan error, 1), log: logPath}
	go func() { c.done <- cmd.Wait() }()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop asks the child to stop (SIGTERM: finish and exit) and waits for it.
func (c *child) stop() error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.done:
		if err != nil {
			return fmt.Errorf("%s exited: %w; its log:\n%s", c.name, err, tailOf(c.log))
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("%s did not stop within 30s of SIGTERM; killed", c.name)
	}
}

// exited returns the error of a child that exited before it was ready.
func (c *child) exited(err error) error {
	return fmt.Errorf("%s exited before it was ready (%v); see its log %s:\n%s", c.name, err, c.log, tailOf(c.log))
}

// tailOf returns the last few KiB of a log file.
func tailOf(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	const n = 4096
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

var errNotReady = errors.New("not ready after a minute")
