package natsserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/eventbus/eventbus/internal/devstack/serverlog"
)

// A Server whose Options.Binary is set runs that nats-server executable
// as a child process instead of embedding the server: the way to test
// against a server version other than the one go.mod embeds. Everything the
// embedded path reads from *server.Server (readiness, stream leaders, the
// meta group) is read from the child's monitoring port instead.

const (
	// binaryReadyTimeout bounds a child server's start: an exec, and
	// JetStream recovering its store, take longer than an embedded start.
	binaryReadyTimeout = 30 * time.Second
	// binaryStopTimeout is how long Shutdown waits after SIGTERM before it
	// kills the server; a clean shutdown takes well under a second.
	binaryStopTimeout = 10 * time.Second
	// binaryStartAttempts: ports picked free a moment before the start may be
	// taken by then; a first start picks new ones and tries again.
	binaryStartAttempts = 3
)

// monitorClient talks to a child server's monitoring port. Without
// keep-alives, no idle connection (and its goroutines) outlives a request:
// goleak checks every test package.
var monitorClient = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// process is one run of a child nats-server.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // cmd.Wait's result, set before done is closed
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// startBinary is startServer for a child server: it picks the client port
// (unless given) and a monitoring port, writes the config file next to the
// store directory and starts the process.
func startBinary(n *Server) error {
	path, err := exec.LookPath(n.binary)
	if err != nil {
		return fmt.Errorf("nats: server binary: %w", err)
	}
	n.binary = path
	if err := os.MkdirAll(n.opts.StoreDir, 0o755); err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	base := strings.TrimRight(n.opts.StoreDir, string(os.PathSeparator))
	n.confPath, n.logPath = base+".nats-server.conf", base+".nats-server.log"
	pickPort := n.opts.Port <= 0
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(2)
		if err != nil {
			return fmt.Errorf("nats: %w", err)
		}
		if pickPort {
			n.opts.Port = ports[0]
		}
		n.httpPort = ports[1]
		if err := os.WriteFile(n.confPath, []byte(binaryConfig(n.opts, n.httpPort)), 0o644); err != nil {
			return fmt.Errorf("nats: %w", err)
		}
		err = n.startProcess()
		if err == nil || attempt == binaryStartAttempts || !errors.Is(err, errPortInUse) {
			return err
		}
	}
}

var errPortInUse = errors.New("port in use")

// binaryConfig is the nats-server configuration file equivalent to the
// embedded server's opts, plus the monitoring port.
func binaryConfig(o server.Options, httpPort int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "host: %q\nport: %d\nhttp: %q\n", o.Host, o.Port, net.JoinHostPort(o.Host, strconv.Itoa(httpPort)))
	if o.ServerName != "" {
		fmt.Fprintf(&b, "server_name: %q\n", o.ServerName)
	}
	if o.MaxPayload > 0 {
		fmt.Fprintf(&b, "max_payload: %d\n", o.MaxPayload)
	}
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n", o.StoreDir)
	if o.SyncAlways {
		b.WriteString("  sync_interval: always\n")
	}
	b.WriteString("}\n")
	if o.Cluster.Port != 0 {
		fmt.Fprintf(&b, "cluster {\n  name: %q\n  listen: %q\n  routes: [\n", o.Cluster.Name,
			net.JoinHostPort(o.Cluster.Host, strconv.Itoa(o.Cluster.Port)))
		for _, r := range o.Routes {
			fmt.Fprintf(&b, "    %q\n", r.String())
		}
		b.WriteString("  ]\n}\n")
	}
	return b.String()
}

// startProcess runs the server with n's config file and waits until it is
// ready; the caller holds n.mu or owns n alone.
func (n *Server) startProcess() error {
	logOffset := serverlog.End(n.logPath)
	logFile, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(n.binary, "-c", n.confPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// A test binary killed on its timeout runs no cleanup: the kernel then
	// kills the server, which would otherwise hold its ports.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("nats: start %s: %w", n.binary, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := n.waitProcessReady(p); err != nil {
		p.stop()
		serverLog := serverlog.ReadFrom(n.logPath, logOffset)
		err = fmt.Errorf("nats: %s on %s:%d: %w\n%s", n.binary, n.opts.Host, n.opts.Port, err, serverlog.Tail(serverLog))
		if strings.Contains(string(serverLog), "address already in use") {
			err = fmt.Errorf("%w: %w", errPortInUse, err)
		}
		return err
	}
	n.proc = p
	return nil
}

// waitProcessReady polls until JetStream is up (the monitoring port's
// healthz) and the client port takes connections, which the server opens
// after its monitoring port.
func (n *Server) waitProcessReady(p *process) error {
	deadline := time.Now().Add(binaryReadyTimeout)
	clientAddr := net.JoinHostPort(n.opts.Host, strconv.Itoa(n.opts.Port))
	for {
		state := "healthz: " + n.healthz("js-enabled-only=true")
		if state == "healthz: ok" {
			conn, err := net.DialTimeout("tcp", clientAddr, time.Second)
			if err == nil {
				conn.Close()
				return nil
			}
			state = "client port: " + err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %s (%s)", binaryReadyTimeout, state)
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before it was ready: %v", p.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM, waits for the exit at most binaryStopTimeout, then
// kills the process. It returns whether it had to kill.
func (p *process) stop() (killed bool) {
	if p.exited() {
		return false
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM) // fails only once it has exited
	select {
	case <-p.done:
		return false
	case <-time.After(binaryStopTimeout):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return true
}

// healthz returns "ok" when the server's /healthz?query answers 200, else
// what it said.
func (n *Server) healthz(query string) string {
	resp, err := monitorClient.Get(n.monitorURL("/healthz?" + query))
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return "ok"
	}
	var h struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&h)
	return fmt.Sprintf("%s: %s", resp.Status, h.Error)
}

func (n *Server) monitorURL(path string) string {
	return "http://" + net.JoinHostPort(n.opts.Host, strconv.Itoa(n.httpPort)) + path
}

// jsz is the part of the monitoring port's /jsz that this package reads.
type jsz struct {
	Config struct {
		SyncAlways bool `json:"sync_always"`
	} `json:"config"`
	Meta *struct {
		Leader   string `json:"leader"`
		Replicas []struct {
			Name    string `json:"name"`
			Current bool   `json:"current"`
			Offline bool   `json:"offline"`
		} `json:"replicas"`
	} `json:"meta_cluster"`
	AccountDetails []struct {
		Streams []struct {
			Name    string `json:"name"`
			Cluster *struct {
				Leader string `json:"leader"`
			} `json:"cluster"`
		} `json:"stream_detail"`
	} `json:"account_details"`
}

// jsz reads the server's /jsz?query.
func (n *Server) jsz(query string) (*jsz, error) {
	resp, err := monitorClient.Get(n.monitorURL("/jsz?" + query))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/jsz: %s", resp.Status)
	}
	var j jsz
	if err := json.NewDecoder(resp.Body).Decode(&j); err != nil {
		return nil, fmt.Errorf("/jsz: %w", err)
	}
	return &j, nil
}

// binaryLeadsStream reports whether the child server leads stream in the
// default account, as it sees it (the embedded JetStreamIsStreamLeader).
func (n *Server) binaryLeadsStream(stream string) bool {
	j, err := n.jsz("streams=true&acc=" + url.QueryEscape(server.DEFAULT_GLOBAL_ACCOUNT))
	if err != nil {
		return false // polled by callers: an unreachable node leads nothing now
	}
	for _, acc := range j.AccountDetails {
		for _, s := range acc.Streams {
			if s.Name == stream && s.Cluster != nil && s.Cluster.Leader == n.Name() {
				return true
			}
		}
	}
	return false
}

// binaryMetaView is metaView for a child server: current when its healthz
// (server checks only) says it is in contact with, and current with, a meta
// leader; the peers as /jsz lists them on the leader.
func (n *Server) binaryMetaView() (metaView, error) {
	if h := n.healthz("js-server-only=true"); h != "ok" {
		return metaView{}, fmt.Errorf("not current with the meta leader: healthz: %s", h)
	}
	j, err := n.jsz("")
	if err != nil {
		return metaView{}, err
	}
	v := metaView{current: true}
	if j.Meta != nil && j.Meta.Leader == n.Name() {
		v.leader = true
		v.peers = []string{n.Name()}
		for _, r := range j.Meta.Replicas {
			if r.Offline {
				v.offline = append(v.offline, r.Name)
			} else {
				v.peers = append(v.peers, r.Name)
			}
		}
	}
	return v, nil
}
