package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/eventbus/eventbus/config"
)

// devEnv is what the relay runs with and what a developer's other shells
// need to reach it.
type devEnv struct {
	dir                  string // as given by -dir: what the banner names
	bin                  string // the eventbus binary
	databaseURL, natsURL string
	httpAddr             string // empty: HTTP disabled
	metricsAddr          string // empty: /metrics on httpAddr
	adminToken           string
	tokenSource          tokenSource
}

// tokenSource says where the admin token came from.
type tokenSource int

const (
	tokenFromEnv tokenSource = iota // EVENTBUS_ADMIN_TOKEN
	tokenFromFile
	tokenGenerated
)

// adminToken returns fromEnv when set, else the token kept in path, which is
// generated there on the first run: 32 random bytes, hex, mode 0600.
func adminToken(fromEnv, path string) (string, tokenSource, error) {
	if fromEnv != "" {
		return fromEnv, tokenFromEnv, nil
	}
	b, err := os.ReadFile(path)
	if err == nil {
		token := strings.TrimSpace(string(b))
		if len(token) < config.MinAdminTokenLen {
			return "", 0, fmt.Errorf("%s holds a token shorter than %d characters: delete the file and a new one is generated", path, config.MinAdminTokenLen)
		}
		// The file may have been copied around; it is a credential.
		if err := os.Chmod(path, 0o600); err != nil {
			return "", 0, fmt.Errorf("admin token: %w", err)
		}
		return token, tokenFromFile, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", 0, fmt.Errorf("admin token: %w", err)
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // never fails (crypto/rand)
	token := hex.EncodeToString(raw[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", 0, fmt.Errorf("admin token: %w", err)
	}
	_, err = fmt.Fprintln(f, token)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, fmt.Errorf("admin token: %w", err)
	}
	return token, tokenGenerated, nil
}

// writeEnvFile writes the variables other shells need, for `source`, mode
// 0600 (it holds the admin token and maybe a password). It replaces the file
// in one rename, so a shell sourcing it meanwhile reads the old or the new.
func (d devEnv) writeEnvFile(path string) error {
	var b strings.Builder
	b.WriteString("# Written by eventbus-dev (make run) at every start; in another shell: source " + filepath.Join(d.dir, "env") + "\n")
	vars := [][2]string{
		{"EVENTBUS_DATABASE_URL", d.databaseURL},
		{"EVENTBUS_NATS_URL", d.natsURL},
		{"EVENTBUS_ADMIN_TOKEN", d.adminToken},
	}
	if d.httpAddr != "" {
		// The port may have fallen back to a free one: doctor (a running
		// relay's /readyz) and curl in another shell need the real one.
		vars = append(vars, [2]string{"EVENTBUS_HTTP_ADDR", d.httpAddr})
	}
	for _, kv := range vars {
		fmt.Fprintf(&b, "export %s=%s\n", kv[0], shellQuote(kv[1]))
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".env-*") // mode 0600
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// choosePort returns preferred when nothing listens on 127.0.0.1:preferred,
// else a port that was free a moment ago, saying so on log; 0 prefers none.
func choosePort(service string, preferred int, log *slog.Logger) (int, error) {
	if preferred != 0 {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(preferred)))
		if err == nil {
			return preferred, l.Close()
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port for %s: %w", service, err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find a free port for %s: %w", service, err)
	}
	if preferred != 0 {
		log.Warn(fmt.Sprintf("port %d is in use: %s gets port %d this time", preferred, service, port))
	}
	return port, nil
}

// waitReady polls the relay's /readyz on addr until it answers 200, for at
// most timeout. It returns "" when the relay is ready, else why not (the last
// answer); ok is false when ctx ended first. An empty addr (HTTP disabled)
// is not waited for.
func waitReady(ctx context.Context, addr string, timeout time.Duration) (notReady string, ok bool) {
	if addr == "" {
		return "", true
	}
	url := "http://" + urlHost(addr) + "/readyz"
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	wait := 100 * time.Millisecond
	for {
		notReady = "no answer from " + url
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err.Error(), true
		}
		if res, err := client.Do(req); err == nil {
			body, _ := io.ReadAll(io.LimitReader(res.Body, 1024))
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return "", true
			}
			notReady = strings.TrimSpace(string(body))
		}
		if time.Now().After(deadline) {
			return notReady, true
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return "", false
		}
		wait = min(2*wait, time.Second)
	}
}

// urlHost is addr (host:port) as it goes into a URL that reaches it from
// this machine: an unspecified host (0.0.0.0, ::, empty) becomes 127.0.0.1.
func urlHost(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// printBanner tells a developer where everything is and what to try first.
// notReady, when set, says why the relay is not ready yet.
func (d devEnv) printBanner(w io.Writer, notReady string) {
	bin := d.bin
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, bin); err == nil && !strings.HasPrefix(rel, "..") {
			bin = rel
		}
	}
	envFile := filepath.Join(d.dir, "env")
	var b strings.Builder
	line := func(name, value string) { fmt.Fprintf(&b, "  %-12s %s\n", name, value) }
	b.WriteString("\n")
	if notReady != "" {
		fmt.Fprintf(&b, "  The relay is not ready yet (%s); its log above says why.\n\n", notReady)
	} else {
		b.WriteString("  eventbus is running.\n\n")
	}
	line("PostgreSQL", d.databaseURL)
	line("NATS", d.natsURL)
	if d.httpAddr != "" {
		base := "http://" + urlHost(d.httpAddr)
		line("HTTP", base+"/healthz  "+base+"/readyz")
		metrics := base
		if d.metricsAddr != "" {
			metrics = "http://" + urlHost(d.metricsAddr)
		}
		line("metrics", metrics+"/metrics")
		if d.tokenSource == tokenGenerated {
			// The fragment never reaches a server; the page moves it to
			// its session storage and wipes it from the address bar.
			line("monitor", base+"/crm/events#token="+d.adminToken+"  (this link signs you in)")
		} else {
			line("monitor", base+"/crm/events  (sign in with the admin token)")
		}
	}
	switch d.tokenSource {
	case tokenGenerated:
		if d.httpAddr != "" {
			line("admin token", "new, in the link above; kept in "+filepath.Join(d.dir, "admin-token")+" and "+envFile+"; printed only this once")
		} else {
			line("admin token", d.adminToken)
			line("", "(new: kept in "+filepath.Join(d.dir, "admin-token")+"; printed only this once)")
		}
	case tokenFromFile:
		line("admin token", "cat "+filepath.Join(d.dir, "admin-token"))
	case tokenFromEnv:
		line("admin token", "yours, from EVENTBUS_ADMIN_TOKEN")
	}
	fmt.Fprintf(&b, "\n  In another terminal, in this directory:\n\n")
	fmt.Fprintf(&b, "    source %s      # EVENTBUS_DATABASE_URL, EVENTBUS_NATS_URL, EVENTBUS_ADMIN_TOKEN, EVENTBUS_HTTP_ADDR\n", envFile)
	fmt.Fprintf(&b, "    %s tail &\n", bin)
	fmt.Fprintf(&b, "    %s publish --event-type demo.hello --aggregate-type demo --aggregate-id 1 --payload '{\"hello\": \"world\"}'\n", bin)
	fmt.Fprintf(&b, "\n  Ctrl-C stops the relay, then NATS and PostgreSQL.\n\n")
	_, _ = io.WriteString(w, b.String())
}
