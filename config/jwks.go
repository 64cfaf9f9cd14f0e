package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
)

// validJWKSURL accepts an https URL, or an http one on the loopback
// interface (a local Supabase): a key set fetched in the clear could be
// replaced on the way, and with it anyone could sign in. The message never
// quotes a URL that may hold a password.
func validJWKSURL(raw string) error {
	const example = "such as https://<project>.supabase.co/auth/v1/.well-known/jwks.json"
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("not an absolute URL %s", example)
	case u.User != nil:
		return errors.New("must not hold credentials (user:password@): the key set is public")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	case u.Scheme == "http":
		return fmt.Errorf("%s: plain http only on the loopback interface; use https, %s", u.Redacted(), example)
	default:
		return fmt.Errorf("scheme %q: use https, %s", u.Scheme, example)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
