package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventbus/eventbus/natsconn"
	"github.com/eventbus/eventbus/publisher"
)

func (o Options) checkNATS(ctx context.Context) []Result {
	const name = "nats"
	fix := "check EVENTBUS_NATS_URL, the credentials (EVENTBUS_NATS_CREDS, _NKEY, _CA, _CERT, _KEY) and that the server runs with JetStream (-js)"
	switch {
	case o.JS == nil && natsconn.Refused(o.NATSError):
		return one(fail(name, "check the credentials and TLS settings (EVENTBUS_NATS_URL's user and password or token, EVENTBUS_NATS_CREDS, _NKEY, _CA, _CERT, _KEY) against the server's",
			"NATS at %s refuses the connection as configured: %v", o.NATSURL, o.NATSError))
	case o.JS == nil:
		return one(fail(name, fix, "NATS at %s is unreachable: %v", o.NATSURL, o.NATSError))
	}
	if _, err := o.JS.AccountInfo(ctx); err != nil {
		return one(fail(name, fix, "NATS at %s answers, but JetStream does not: %v", o.NATSURL, err))
	}
	version := o.JS.Conn().ConnectedServerVersion()
	if !natsAtLeast(version, 2, 10) {
		return one(warn(name, "upgrade the NATS server to 2.10 or newer",
			"JetStream at %s (server %s): older than 2.10, the oldest release the relay is tested on", o.NATSURL, version))
	}
	return one(ok(name, "JetStream at %s (server %s)", o.NATSURL, version))
}

// natsAtLeast reports whether a server version ("2.10.27", "2.11.0-RC.1")
// is major.minor or newer; an unreadable version is not.
func natsAtLeast(version string, major, minor int) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}

func (o Options) checkStream(ctx context.Context) []Result {
	const name = "stream"
	want := o.SubjectPrefix + ".>"
	s, err := o.JS.Stream(ctx, o.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return one(warn(name, "start the relay: eventbus run creates it (EVENTBUS_DUPLICATE_WINDOW, EVENTBUS_STREAM_MAX_AGE)",
			"%s does not exist", o.Stream))
	}
	if err != nil {
		return one(fail(name, "", "look up %s: %v", o.Stream, err))
	}
	cfg := s.CachedInfo().Config
	if !slices.ContainsFunc(cfg.Subjects, func(f string) bool { return publisher.SubjectCovers(f, want) }) {
		return one(fail(name, fmt.Sprintf("add %s to the subjects of %s, or set EVENTBUS_STREAM to a stream that binds it", want, o.Stream),
			"%s binds %s, not %s: the relay refuses it", o.Stream, strings.Join(cfg.Subjects, ", "), want))
	}
	out := []Result{ok(name, "%s binds %s (%s storage, %d replica(s))", o.Stream, want, strings.ToLower(cfg.Storage.String()), cfg.Replicas)}
	if cfg.Storage == jetstream.MemoryStorage {
		out = append(out, fail("stream storage", "recreate the stream with file storage", "%s keeps messages in memory: a server restart loses them", o.Stream))
	}
	if cfg.Duplicates < 2*time.Minute {
		out = append(out, warn("duplicate window", "nats stream edit "+o.Stream+" --dupe-window 10m",
			"%s: a relay killed between a PubAck and its status write and restarted after that may store an event twice", cfg.Duplicates))
	} else {
		out = append(out, ok("duplicate window", "%s", cfg.Duplicates))
	}
	if cfg.MaxAge == 0 && cfg.MaxBytes <= 0 && cfg.MaxMsgs <= 0 {
		out = append(out, warn("stream limits", "nats stream edit "+o.Stream+" --max-age 7d (or --max-bytes)",
			"%s has no age, size or count limit: a disk that fills is an outage", o.Stream))
	} else {
		out = append(out, ok("stream limits", "max age %s, max bytes %d, max messages %d", cfg.MaxAge, cfg.MaxBytes, cfg.MaxMsgs))
	}
	if cfg.Replicas < 3 {
		// A client cannot read the server's sync_interval: every R1 stream
		// warns, and the operator checks the server's config.
		out = append(out, warn("durability", "check the NATS server's config for jetstream { sync_interval: always }, or use R3 across failure domains (README, Broker durability)",
			"%d replica(s): a PubAck means on disk only if the server fsyncs every write (sync_interval: always); a client cannot read the server's sync_interval, so this warns whatever it is set to", cfg.Replicas))
	} else {
		out = append(out, ok("durability", "%d replicas", cfg.Replicas))
	}
	return out
}

func (o Options) checkRelay(ctx context.Context) []Result {
	const name = "relay"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+o.HTTPAddr+"/readyz", nil)
	if err != nil {
		return one(fail(name, "check EVENTBUS_HTTP_ADDR", "%v", err))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return one(warn(name, "start the relay (eventbus run), or point EVENTBUS_HTTP_ADDR at it",
			"no relay answers at %s: %v", o.HTTPAddr, err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	reason := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return one(warn(name, "see the relay's log; a standby is not ready by design",
			"the relay at %s is not ready (%d): %s", o.HTTPAddr, resp.StatusCode, reason))
	}
	return one(ok(name, "the relay at %s is ready", o.HTTPAddr))
}
