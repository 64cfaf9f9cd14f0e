// Package config loads and validates the relay's configuration from the
// environment (prefix EVENTBUS_). It is the only place that reads the
// environment; everything else receives a Config value.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/kelseyhightower/envconfig"
)

// Prefix is the environment prefix of every variable.
const Prefix = "EVENTBUS"

// Config is the relay's configuration. Field tags name the variables, in
// full; the README's configuration table mirrors them.
type Config struct {
	DatabaseURL string `envconfig:"EVENTBUS_DATABASE_URL" default:"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"`
	NATSURL     string `envconfig:"EVENTBUS_NATS_URL" default:"nats://127.0.0.1:4222"`
	Slot        string `envconfig:"EVENTBUS_SLOT" default:"eventbus"`
	// SlotFailover creates the slot with FAILOVER (PostgreSQL 17+).
	SlotFailover  bool   `envconfig:"EVENTBUS_SLOT_FAILOVER" default:"false"`
	Publication   string `envconfig:"EVENTBUS_PUBLICATION" default:"eventbus"`
	Stream        string `envconfig:"EVENTBUS_STREAM" default:"EVENTBUS"`
	SubjectPrefix string `envconfig:"EVENTBUS_SUBJECT_PREFIX" default:"events"`
	// DuplicateWindow and StreamMaxAge configure the stream when the relay
	// creates it (an existing stream is never changed); see the README for
	// their memory and disk cost.
	DuplicateWindow Duration `envconfig:"EVENTBUS_DUPLICATE_WINDOW" default:"10m"`
	StreamMaxAge    Duration `envconfig:"EVENTBUS_STREAM_MAX_AGE" default:"7d"`
	MaxRetries      int      `envconfig:"EVENTBUS_MAX_RETRIES" default:"5"`
	// HTTPAddr is where /metrics, /healthz and /readyz are served; empty disables.
	HTTPAddr string `envconfig:"EVENTBUS_HTTP_ADDR" default:"127.0.0.1:8080"`
	// MetricsAddr, when set, serves /metrics on a listener of its own
	// instead of on HTTPAddr.
	MetricsAddr string `envconfig:"EVENTBUS_METRICS_ADDR"`
	// AdminToken is the bearer token of the HTTP endpoints beyond /healthz,
	// /readyz and /metrics (pprof, later the API); empty disables them.
	AdminToken string `envconfig:"EVENTBUS_ADMIN_TOKEN"`
	// JWTSecret verifies Supabase-style HS256 JWTs of the monitor's API
	// (/api/, /crm/events): admins of an organization sign in with them.
	JWTSecret string `envconfig:"EVENTBUS_JWT_SECRET"`
	// JWKSURL is where the project's asymmetric signing keys are (ES256 and
	// RS256 JWTs), e.g. Supabase's
	// https://<project>.supabase.co/auth/v1/.well-known/jwks.json; with or
	// instead of JWTSecret.
	JWKSURL string `envconfig:"EVENTBUS_JWKS_URL"`
	// JWTAudience must be in a JWT's aud claim.
	JWTAudience string `envconfig:"EVENTBUS_JWT_AUDIENCE" default:"authenticated"`

	// NATS authentication and TLS, on top of user:password@ or token@ in
	// NATSURL. Each names a file; see package natsconn.
	NATSCreds string `envconfig:"EVENTBUS_NATS_CREDS"` // user JWT and nkey seed (.creds)
	NATSNkey  string `envconfig:"EVENTBUS_NATS_NKEY"`  // nkey seed (SU…)
	NATSCA    string `envconfig:"EVENTBUS_NATS_CA"`    // CA certificates that verify the server
	NATSCert  string `envconfig:"EVENTBUS_NATS_CERT"`  // client certificate, with NATSKey
	NATSKey   string `envconfig:"EVENTBUS_NATS_KEY"`   // client private key, with NATSCert

	LogLevel  string `envconfig:"EVENTBUS_LOG_LEVEL" default:"info"`
	LogFormat string `envconfig:"EVENTBUS_LOG_FORMAT" default:"auto"`

	// PublishWindow bounds the events published to JetStream and not yet acked.
	PublishWindow int `envconfig:"EVENTBUS_PUBLISH_WINDOW" default:"2048"`
	// PublishLinger is the longest the relay holds events under load (above
	// 3,000 transactions a second) to write them to NATS together.
	PublishLinger Duration `envconfig:"EVENTBUS_PUBLISH_LINGER" default:"1ms"`
	// StatusFlushInterval bounds how long an acked event waits for its status write.
	StatusFlushInterval Duration `envconfig:"EVENTBUS_STATUS_FLUSH_INTERVAL" default:"100ms"`
	// StandbyInterval is how often the confirmed position is reported to Postgres.
	StandbyInterval Duration `envconfig:"EVENTBUS_STANDBY_INTERVAL" default:"1s"`
	// HeartbeatInterval is how often the relay writes a heartbeat message to
	// the WAL so the slot advances while event_bus is quiet; 0 disables.
	HeartbeatInterval Duration `envconfig:"EVENTBUS_HEARTBEAT_INTERVAL" default:"30s"`
	// RedriveInterval is how often run looks for rows that should have been
	// delivered by now and hands them back to the stream; 0 disables.
	RedriveInterval Duration `envconfig:"EVENTBUS_REDRIVE_INTERVAL" default:"1m"`
	// RedriveAfter is the margin: a pending row counts as stuck when it was
	// created this long before the last confirmed commit.
	RedriveAfter Duration `envconfig:"EVENTBUS_REDRIVE_AFTER" default:"2m"`
	// Retention makes run delete processed events older than this once an
	// hour; 0 keeps them.
	Retention Duration `envconfig:"EVENTBUS_RETENTION" default:"0"`
	// ShutdownTimeout bounds the graceful drain after SIGINT/SIGTERM.
	ShutdownTimeout Duration `envconfig:"EVENTBUS_SHUTDOWN_TIMEOUT" default:"15s"`
	// RelayRole, when set, is the least-privilege role the relay runs as:
	// `eventbus migrate` grants it what `eventbus run` needs.
	RelayRole string `envconfig:"EVENTBUS_RELAY_ROLE"`

	// Webhooks runs the webhook deliverer inside `eventbus run`.
	Webhooks bool `envconfig:"EVENTBUS_WEBHOOKS" default:"true"`
	// WebhookTimeout bounds one delivery attempt (connect to last byte).
	WebhookTimeout Duration `envconfig:"EVENTBUS_WEBHOOK_TIMEOUT" default:"10s"`
	// WebhookRetryBase is the first retry's wait; it doubles per attempt.
	WebhookRetryBase Duration `envconfig:"EVENTBUS_WEBHOOK_RETRY_BASE" default:"5s"`
	// WebhookMaxAttempts ends a delivery failed after this many attempts.
	WebhookMaxAttempts int `envconfig:"EVENTBUS_WEBHOOK_MAX_ATTEMPTS" default:"10"`
	// WebhookConcurrency bounds the attempts in flight to one endpoint.
	WebhookConcurrency int `envconfig:"EVENTBUS_WEBHOOK_CONCURRENCY" default:"4"`
	// WebhookAllowPrivate lets webhooks target loopback, private and
	// link-local addresses (tests, a trusted network).
	WebhookAllowPrivate bool `envconfig:"EVENTBUS_WEBHOOK_ALLOW_PRIVATE" default:"false"`
}

// Duration is the type of every duration variable: a Go duration ("500ms",
// "30s", "5m", "1h30m"), or whole days optionally followed by one ("7d",
// "1d12h"); zero in any unit ("0", "0s", "0d") is zero. A negative value
// decodes, for Validate to refuse by name. Logs print it as text.
type Duration time.Duration

// Decode implements envconfig.Decoder.
func (d *Duration) Decode(v string) error {
	v = strings.TrimSpace(v)
	neg := strings.HasPrefix(v, "-")
	p, ok := parseDays(strings.TrimPrefix(v, "-"))
	if !ok {
		return fmt.Errorf("%q is not a duration", v)
	}
	if neg {
		p = -p
	}
	*d = Duration(p)
	return nil
}

func (d Duration) String() string { return time.Duration(d).String() }

// ParseAge parses a positive Go duration, or whole days optionally followed
// by one ("30d", "1d12h").
func ParseAge(v string) (time.Duration, error) {
	d, ok := parseDays(v)
	if !ok || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration such as 30d, 36h or 90m", v)
	}
	return d, nil
}

// parseDays parses a Go duration that is not negative, or whole days
// optionally followed by one.
func parseDays(v string) (time.Duration, bool) {
	var d time.Duration
	rest := v
	if days, after, ok := strings.Cut(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return 0, false
		}
		d, rest = time.Duration(n)*24*time.Hour, after
	}
	if rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil || r < 0 {
			return 0, false
		}
		d += r
	}
	return d, v != ""
}

// Error is a configuration problem tied to one variable.
type Error struct {
	Variable string // full name, e.g. EVENTBUS_MAX_RETRIES
	Problem  string
}

func (e *Error) Error() string { return e.Variable + ": " + e.Problem }

// Load reads the environment and validates the result.
func Load() (Config, error) {
	var c Config
	// Tags hold the full names and the prefix given to envconfig is empty:
	// with a prefix, envconfig falls back to the bare tag (DATABASE_URL,
	// NATS_URL, JWT_SECRET…) when the prefixed variable is unset, and other
	// programs' variables would configure the relay. Only EVENTBUS_* counts.
	if err := envconfig.Process("", &c); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return c, &Error{Variable: pe.KeyName, Problem: fmt.Sprintf("invalid value %q: want %s", pe.Value, typeWord(pe.TypeName))}
		}
		return c, err
	}
	return c, c.Validate()
}

// typeWord describes what a variable of the Go type t (as envconfig names
// it: "int", "config.Duration") takes.
func typeWord(t string) string {
	switch t {
	case "int":
		return "an integer"
	case "bool":
		return "true or false"
	case reflect.TypeFor[Duration]().String():
		return "a duration such as 30s, 5m, 1h or 7d"
	default:
		return "a " + t
	}
}

var (
	slotName   = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
	identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)
	streamName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
)

// Validate checks every field and names the first bad variable.
func (c Config) Validate() error {
	bad := func(name, format string, args ...any) error {
		return &Error{Variable: Prefix + "_" + name, Problem: fmt.Sprintf(format, args...)}
	}
	if _, err := pgconn.ParseConfig(c.DatabaseURL); err != nil {
		return bad("DATABASE_URL", "not a valid PostgreSQL URL (%s)", Redact(err.Error(), c.DatabaseURL))
	}
	for _, raw := range strings.Split(c.NATSURL, ",") {
		// The message never quotes the URL: it may hold a password or token.
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || u.Host == "" {
			return bad("NATS_URL", "not a valid URL such as nats://127.0.0.1:4222 (several are separated by commas)")
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return bad("NATS_URL", "scheme %q not supported: use nats://, tls://, ws:// or wss://", u.Scheme)
		}
	}
	if c.NATSCreds != "" && c.NATSNkey != "" {
		return bad("NATS_NKEY", "set either EVENTBUS_NATS_CREDS or EVENTBUS_NATS_NKEY, not both")
	}
	if c.NATSCert != "" && c.NATSKey == "" {
		return bad("NATS_KEY", "required with EVENTBUS_NATS_CERT (the client certificate's private key)")
	}
	if c.NATSKey != "" && c.NATSCert == "" {
		return bad("NATS_CERT", "required with EVENTBUS_NATS_KEY (the client certificate)")
	}
	if !slotName.MatchString(c.Slot) {
		return bad("SLOT", "%q is not a valid replication slot name: 1-63 of a-z, 0-9, _", c.Slot)
	}
	if !identifier.MatchString(c.Publication) {
		return bad("PUBLICATION", "%q is not a valid publication name: a letter or _, then letters, digits, _ (at most 63)", c.Publication)
	}
	if c.RelayRole != "" && !identifier.MatchString(c.RelayRole) {
		return bad("RELAY_ROLE", "%q is not a valid role name: a letter or _, then letters, digits, _ (at most 63)", c.RelayRole)
	}
	if !streamName.MatchString(c.Stream) {
		return bad("STREAM", "%q is not a valid JetStream stream name: letters, digits, _ and -", c.Stream)
	}
	if err := ValidSubject(c.SubjectPrefix); err != nil {
		return bad("SUBJECT_PREFIX", "%q %v", c.SubjectPrefix, err)
	}
	if c.MaxRetries < 1 {
		return bad("MAX_RETRIES", "must be at least 1, got %d", c.MaxRetries)
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			return bad("HTTP_ADDR", "%q is not host:port (leave empty to disable HTTP)", c.HTTPAddr)
		}
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return bad("METRICS_ADDR", "%q is not host:port (leave empty to serve /metrics on EVENTBUS_HTTP_ADDR)", c.MetricsAddr)
		}
		if c.MetricsAddr == c.HTTPAddr {
			return bad("METRICS_ADDR", "%q is also EVENTBUS_HTTP_ADDR: leave it empty to serve /metrics there", c.MetricsAddr)
		}
	}
	if c.AdminToken != "" && len(c.AdminToken) < MinAdminTokenLen {
		return bad("ADMIN_TOKEN", "too short: at least %d characters (e.g. openssl rand -hex 32)", MinAdminTokenLen)
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < MinJWTSecretLen {
		return bad("JWT_SECRET", "too short: at least %d characters (the project's JWT secret)", MinJWTSecretLen)
	}
	if c.JWKSURL != "" {
		if err := validJWKSURL(c.JWKSURL); err != nil {
			return bad("JWKS_URL", "%v", err)
		}
	}
	if strings.TrimSpace(c.JWTAudience) == "" {
		return bad("JWT_AUDIENCE", "must not be empty (Supabase's user tokens have aud authenticated)")
	}
	if _, err := ParseLogLevel(c.LogLevel); err != nil {
		return bad("LOG_LEVEL", "%v", err)
	}
	switch c.LogFormat {
	case "auto", "text", "json":
	default:
		return bad("LOG_FORMAT", "%q: want auto, text or json", c.LogFormat)
	}
	if c.WebhookMaxAttempts < 1 || c.WebhookMaxAttempts > 1000 {
		return bad("WEBHOOK_MAX_ATTEMPTS", "must be between 1 and 1000, got %d", c.WebhookMaxAttempts)
	}
	if c.WebhookConcurrency < 1 || c.WebhookConcurrency > 32 {
		return bad("WEBHOOK_CONCURRENCY", "must be between 1 and 32 (the attempts a deliverer runs at once), got %d", c.WebhookConcurrency)
	}
	if c.PublishWindow < 1 || c.PublishWindow > 1<<20 {
		return bad("PUBLISH_WINDOW", "must be between 1 and 1048576, got %d", c.PublishWindow)
	}
	if time.Duration(c.PublishLinger) > 100*time.Millisecond {
		return bad("PUBLISH_LINGER", "must be at most 100ms (0 publishes every event at once), got %s", c.PublishLinger)
	}
	// No duration may be negative; every Duration field is checked, so a
	// new one cannot be missed.
	ct, cv := reflect.TypeFor[Config](), reflect.ValueOf(c)
	for i := range ct.NumField() {
		if d, ok := cv.Field(i).Interface().(Duration); ok && d < 0 {
			return &Error{Variable: ct.Field(i).Tag.Get("envconfig"), Problem: fmt.Sprintf("must not be negative, got %s", d)}
		}
	}
	for _, f := range []struct {
		name string
		d    Duration
	}{
		{"STATUS_FLUSH_INTERVAL", c.StatusFlushInterval},
		{"STANDBY_INTERVAL", c.StandbyInterval},
		{"REDRIVE_AFTER", c.RedriveAfter},
		{"SHUTDOWN_TIMEOUT", c.ShutdownTimeout},
		{"WEBHOOK_TIMEOUT", c.WebhookTimeout},
		{"WEBHOOK_RETRY_BASE", c.WebhookRetryBase},
	} {
		if f.d == 0 {
			return bad(f.name, "must be a positive duration, got %s", f.d)
		}
	}
	// JetStream refuses a stream whose limits break these rules, and the
	// relay would retry creating it forever.
	if w := time.Duration(c.DuplicateWindow); w != 0 && w < 100*time.Millisecond {
		return bad("DUPLICATE_WINDOW", "must be 0 (JetStream's 2 minutes) or at least 100ms, got %s", w)
	}
	if a := time.Duration(c.StreamMaxAge); a != 0 && a < 100*time.Millisecond {
		return bad("STREAM_MAX_AGE", "must be 0 (unlimited) or at least 100ms, got %s", a)
	}
	if w, a := c.DuplicateWindow, c.StreamMaxAge; a != 0 && w > a {
		return bad("DUPLICATE_WINDOW", "must not be longer than EVENTBUS_STREAM_MAX_AGE (%s), got %s", a, w)
	}
	if r := time.Duration(c.Retention); r != 0 && r < time.Hour {
		return bad("RETENTION", "must be 0 (off) or at least 1h, got %s", r)
	}
	if time.Duration(c.StandbyInterval) > 10*time.Second {
		return bad("STANDBY_INTERVAL", "must be at most 10s so the server does not time the relay out, got %s", c.StandbyInterval)
	}
	return nil
}

// ParseLogLevel maps debug, info, warn and error to slog levels.
func ParseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q: want debug, info, warn or error", s)
	}
	return l, nil
}

// ValidSubject reports whether s is a literal NATS subject: dot-separated,
// non-empty tokens without whitespace, control characters or wildcards.
func ValidSubject(s string) error {
	if s == "" {
		return errors.New("is empty")
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			return errors.New("has an empty token (leading, trailing or double dot)")
		}
		for _, r := range tok {
			switch {
			case r == '*' || r == '>':
				return fmt.Errorf("contains the wildcard %q", r)
			case r <= ' ' || r == 0x7f:
				return errors.New("contains whitespace or a control character")
			}
		}
	}
	return nil
}

// MinAdminTokenLen is the shortest EVENTBUS_ADMIN_TOKEN accepted.
const MinAdminTokenLen = 16

// MinJWTSecretLen is the shortest EVENTBUS_JWT_SECRET accepted.
const MinJWTSecretLen = 32

// Secrets returns the secrets the configuration carries: the database
// password (from the URL or key=value string, PGPASSWORD or the passfile), the
// NATS passwords and tokens of the URLs, the admin token. Output that could
// hold one of them passes through Redactor.
func (c Config) Secrets() []string {
	var s []string
	add := func(v string) {
		if v == "" {
			return
		}
		s = append(s, v)
		for _, esc := range []string{url.QueryEscape(v), url.PathEscape(v)} {
			if esc != v {
				s = append(s, esc)
			}
		}
	}
	if pc, err := pgconn.ParseConfig(c.DatabaseURL); err == nil {
		add(pc.Password)
	}
	if u, err := url.Parse(c.DatabaseURL); err == nil && u.User != nil {
		pw, _ := u.User.Password()
		add(pw)
	}
	for _, raw := range strings.Split(c.NATSURL, ",") {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || u.User == nil {
			continue
		}
		if pw, ok := u.User.Password(); ok {
			add(pw)
		} else {
			add(u.User.Username()) // a token
		}
	}
	add(c.AdminToken)
	add(c.JWTSecret)
	return s
}

// Redactor replaces every one of Secrets with xxxxx.
func (c Config) Redactor() *strings.Replacer {
	secrets := c.Secrets()
	// Longest first: at one position the Replacer takes the first match.
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(secrets))
	for _, v := range secrets {
		pairs = append(pairs, v, "xxxxx")
	}
	return strings.NewReplacer(pairs...)
}

// Redact replaces the password of the PostgreSQL URL dsn wherever it occurs in s.
func Redact(s, dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return s
	}
	if pw, ok := u.User.Password(); ok && pw != "" {
		s = strings.ReplaceAll(s, pw, "xxxxx")
	}
	return s
}
