package pgcluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Kill stops the server as a crash of its host would: SIGKILL to the
// postmaster and every one of its processes, nothing flushed, no
// shutdown checkpoint, clients cut off mid-statement. It returns once the
// postmaster is gone and its port refuses connections. The data directory
// stays (Start on it runs crash recovery); Stop still removes the
// temporary directories.
func (p *Cluster) Kill() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || p.killed {
		return errors.New("postgres: kill: not running")
	}
	pid, err := p.postmasterPID()
	if err != nil {
		return fmt.Errorf("postgres: kill: %w", err)
	}
	// Every server process is a child of the postmaster, each in a session
	// of its own (so no process group holds them all). Stopped first, the
	// postmaster forks no new child while they are killed: they die
	// together, and no walsender outlives it to send a little more WAL.
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("postgres: kill postmaster %d: %w", pid, err)
	}
	pids := append(children(pid), pid)
	for _, c := range pids {
		if err := syscall.Kill(c, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("postgres: kill server process %d: %w", c, err)
		}
	}
	p.killed = true
	deadline := time.Now().Add(30 * time.Second)
	for slices.ContainsFunc(pids, alive) || p.accepts() {
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres: server processes %v still running 30s after SIGKILL", pids)
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.log.Info("postgres killed", "port", p.port, "pid", pid)
	return nil
}

// postmasterPID reads the postmaster's pid from the first line of
// postmaster.pid.
func (p *Cluster) postmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(p.dataDir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("postmaster.pid: no pid in %q", line)
	}
	return pid, nil
}

// children returns the pids of the processes whose parent is pid.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc") // unreadable: none found
	var pids []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(b[i+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			pids = append(pids, child)
		}
	}
	return pids
}

// accepts reports whether something accepts TCP connections on the port.
func (p *Cluster) accepts() bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)), time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// alive reports whether process pid exists and is not a zombie: a killed
// postmaster's parent is init, which may take its time to reap it.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil // no /proc: a zombie counts as alive
	}
	// pid (comm) state ...; comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
