// Package natsconn holds what every NATS connection of eventbus shares: the
// relay's publisher, `eventbus replay`, `tail` and `verify` all connect with
// Options, name the server with RedactURL, and tell a refused connection
// (Refused: wrong credentials, an untrusted certificate — retrying cannot
// help) from an outage (retry; reported as an UnreachableError).
//
// Authentication, on top of user:password@ or token@ in EVENTBUS_NATS_URL
// (which nats.go handles itself):
//
//	EVENTBUS_NATS_CREDS  a .creds file: user JWT and nkey seed (decentralized auth)
//	EVENTBUS_NATS_NKEY   a file holding an nkey seed (SU…)
//
// TLS: EVENTBUS_NATS_CA (CA certificates that verify the server; without it
// the system roots), EVENTBUS_NATS_CERT and EVENTBUS_NATS_KEY (a client
// certificate for servers that verify clients). Any of them makes the
// connection TLS; so does a tls:// URL or a server that requires TLS.
// Certificates and creds files are read again at every (re)connection, so
// they can be rotated without a restart; an nkey's public key is read once.
package natsconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/eventbus/eventbus/config"
)

// Options returns the connection options cfg asks for. A file that cannot be
// read or does not hold what its variable promises is a *config.Error naming
// the variable.
func Options(cfg config.Config) ([]nats.Option, error) {
	var opts []nats.Option
	if cfg.NATSCreds != "" {
		if err := checkCreds(cfg.NATSCreds); err != nil {
			return nil, problem("NATS_CREDS", err)
		}
		opts = append(opts, nats.UserCredentials(cfg.NATSCreds))
	}
	if cfg.NATSNkey != "" {
		if err := readable(cfg.NATSNkey); err != nil {
			return nil, problem("NATS_NKEY", err)
		}
		opt, err := nats.NkeyOptionFromSeed(cfg.NATSNkey)
		if err != nil {
			return nil, problem("NATS_NKEY", fmt.Errorf("%s: %w", cfg.NATSNkey, err))
		}
		opts = append(opts, opt)
	}
	if cfg.NATSCA != "" {
		if err := readable(cfg.NATSCA); err != nil {
			return nil, problem("NATS_CA", err)
		}
		opt := nats.RootCAs(cfg.NATSCA)
		if err := try(opt); err != nil {
			return nil, problem("NATS_CA", err)
		}
		opts = append(opts, opt)
	}
	if cfg.NATSCert != "" || cfg.NATSKey != "" {
		if err := readable(cfg.NATSCert); err != nil {
			return nil, problem("NATS_CERT", err)
		}
		if err := readable(cfg.NATSKey); err != nil {
			return nil, problem("NATS_KEY", err)
		}
		opt := nats.ClientCert(cfg.NATSCert, cfg.NATSKey)
		if err := try(opt); err != nil {
			return nil, problem("NATS_CERT", fmt.Errorf("with EVENTBUS_NATS_KEY: %w", err))
		}
		opts = append(opts, opt)
	}
	return opts, nil
}

func problem(variable string, err error) error {
	return &config.Error{Variable: config.Prefix + "_" + variable, Problem: err.Error()}
}

// try applies opt to throwaway options: the file options of nats.go load
// their files there, and say what is wrong with them.
func try(opt nats.Option) error {
	o := nats.GetDefaultOptions()
	return opt(&o)
}

// readable reports a file that cannot be read in one line: "cannot read
// PATH: no such file or directory".
func readable(path string) error {
	f, err := os.Open(path)
	if err == nil {
		return f.Close()
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("cannot read %s: %w", path, err)
}

// checkCreds checks that path holds a user JWT and an nkey seed, as
// `nsc generate creds` writes them. nats.go reads the file only when it
// connects; this makes a bad file a configuration error.
func checkCreds(path string) error {
	if err := readable(path); err != nil {
		return err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	jwt, err := nkeys.ParseDecoratedJWT(data)
	if err != nil || strings.Count(jwt, ".") != 2 {
		return fmt.Errorf("%s holds no user JWT (want a .creds file as nsc writes it)", path)
	}
	kp, err := nkeys.ParseDecoratedNKey(data)
	if err != nil {
		return fmt.Errorf("%s holds no nkey seed: %w", path, err)
	}
	kp.Wipe()
	return nil
}

// RedactURL returns the comma-separated NATS URLs with their passwords and
// tokens replaced by xxxxx, for logs and error messages.
func RedactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, raw := range parts {
		u, err := url.Parse(strings.TrimSpace(raw))
		switch {
		case err != nil:
			parts[i] = "(invalid URL)" // the parse error would quote it
		case u.User == nil:
			parts[i] = u.String()
		default:
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			} else {
				u.User = url.User("xxxxx") // a token
			}
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

// Refused reports whether err, from connecting to NATS, means the server (or
// the client) refused the connection as configured: credentials rejected, a
// certificate not trusted or not accepted, TLS wanted on one side only.
// Retrying does not help; an outage (refused TCP connection, timeout) is not
// one of these.
func Refused(err error) bool {
	for _, target := range []error{
		nats.ErrAuthorization, nats.ErrAuthExpired, nats.ErrAuthRevoked, nats.ErrAccountAuthExpired,
		nats.ErrSecureConnWanted, nats.ErrSecureConnRequired, nats.ErrNkeysNotSupported,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		header   tls.RecordHeaderError
		op       *net.OpError
	)
	switch {
	case errors.As(err, &verify), errors.As(err, &unknown), errors.As(err, &hostname),
		errors.As(err, &invalid), errors.As(err, &header):
		return true
	case errors.As(err, &op) && op.Op == "remote error":
		// A TLS alert from the server: it did not accept our certificate.
		return true
	case errors.Is(err, nats.ErrTLS) && strings.Contains(err.Error(), "closed by remote after TLS handshake"):
		// The same, when the connection closes before the alert is read
		// (TLS 1.3 verifies the client after the handshake); nats.go
		// words it so for that reason.
		return true
	}
	return false
}

// ErrUnreachable marks an operation that failed because no NATS server
// could be reached (an outage, a wrong host or port), as opposed to one that
// refused the connection (Refused).
var ErrUnreachable = errors.New("NATS is unreachable")

// UnreachableError is what failed (Err) while the NATS servers at URL could
// not be reached. errors.Is finds both ErrUnreachable and what Err wraps.
type UnreachableError struct {
	URL string
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("NATS at %s is unreachable: %v", RedactURL(e.URL), e.Err)
}

func (e *UnreachableError) Unwrap() []error { return []error{ErrUnreachable, e.Err} }

// Unreachable returns err, from an operation on nc, as an *UnreachableError
// when nc was down at the time ("look up stream EVENTBUS: context deadline
// exceeded" says little on its own), else as it is; an error after ctx ended
// is left alone. Call it before closing nc.
func Unreachable(ctx context.Context, nc *nats.Conn, url string, err error) error {
	if err == nil || nc.IsConnected() || ctx.Err() != nil {
		return err
	}
	return &UnreachableError{URL: url, Err: err}
}
