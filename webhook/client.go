package webhook

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrForbiddenTarget is wrapped by every error that refuses a webhook target
// because its address is loopback, private, link-local, metadata or otherwise
// not publicly routable. Callers test for it with errors.Is.
var ErrForbiddenTarget = errors.New("webhook target address not allowed")

// DefaultTimeout is used when ClientOptions.Timeout is zero or negative, so a
// forgotten setting can never mean "wait forever" on an untrusted target.
const DefaultTimeout = 10 * time.Second

// ClientOptions configures NewClient.
type ClientOptions struct {
	// Timeout bounds the whole request (dial, TLS, headers and body); it
	// also bounds each phase individually. Zero means DefaultTimeout.
	Timeout time.Duration
	// AllowPrivate disables the address checks entirely; it mirrors
	// EVENTBUS_WEBHOOK_ALLOW_PRIVATE=true and is meant for local development
	// and tests, never for multi-tenant deployments.
	AllowPrivate bool
	// UserAgent, when non-empty, is sent on requests that do not set their
	// own User-Agent header.
	UserAgent string
}

// NewClient returns an http.Client for delivering webhooks to URLs chosen by
// possibly untrusted organization admins.
//
// Unless o.AllowPrivate is set, every connection is checked at connect time,
// against the IP actually being dialed, so a hostname that resolves (or
// rebinds) to a forbidden address is refused with an error wrapping
// ErrForbiddenTarget. Checking the URL alone would not be enough: DNS is
// controlled by the admin and may answer differently at delivery time.
//
// The client never follows redirects: a 3xx response is returned to the
// caller as-is and counts as a non-2xx answer. Following redirects would let a
// public endpoint bounce the request to an internal one, and refusing all of
// them is simpler to reason about than re-checking each hop.
//
// Proxies from the environment are ignored, because a proxy would hide the
// real target address from the dial-time check.
func NewClient(o ClientOptions) *http.Client {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	dialer := &net.Dialer{
		Timeout:   timeout,
		KeepAlive: 30 * time.Second,
	}
	if !o.AllowPrivate {
		dialer.Control = controlForbidden
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		ExpectContinueTimeout:  time.Second,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10, // untrusted peers get no room for header bombs
	}
	var rt http.RoundTripper = tr
	if o.UserAgent != "" {
		rt = &userAgentTransport{base: tr, ua: o.UserAgent}
	}
	return &http.Client{
		Transport: rt,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// controlForbidden runs after DNS resolution, once per address actually
// dialed (including each Happy Eyeballs attempt), which is what defeats DNS
// rebinding.
func controlForbidden(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		// Fail closed: an address we cannot parse is an address we cannot vet.
		return fmt.Errorf("%w: %s (unparseable address)", ErrForbiddenTarget, address)
	}
	if reason := forbiddenReason(ap.Addr()); reason != "" {
		return fmt.Errorf("%w: %s (%s)", ErrForbiddenTarget, address, reason)
	}
	return nil
}

// userAgentTransport exists because http.Client has no default-header hook.
type userAgentTransport struct {
	base *http.Transport
	ua   string
}

// RoundTrip implements http.RoundTripper.
func (t *userAgentTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("User-Agent") == "" {
		// RoundTrippers must not mutate the caller's request.
		req = req.Clone(req.Context())
		req.Header.Set("User-Agent", t.ua)
	}
	return t.base.RoundTrip(req)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// underlying transport through the wrapper.
func (t *userAgentTransport) CloseIdleConnections() { t.base.CloseIdleConnections() }

type namedPrefix struct {
	prefix netip.Prefix
	reason string
}

// forbiddenPrefixes lists every range a webhook must not reach. Broader
// ranges also cover specific metadata endpoints: 169.254.169.254 (AWS, GCP,
// Azure) is in 169.254/16, fd00:ec2::254 (AWS IPv6) in fc00::/7 and
// 100.100.100.200 (Alibaba) in 100.64/10.
var forbiddenPrefixes = []namedPrefix{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified/this-network"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT/metadata"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local/metadata"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved/broadcast"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("fc00::/7"), "private/metadata"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// nat64 is the well-known NAT64 prefix (RFC 6052); a NAT64 gateway would
// translate 64:ff9b::a.b.c.d to the embedded IPv4 address, so that address is
// what has to be judged.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// ForbiddenIP reports whether ip must not be the target of a webhook:
// unspecified, loopback, private, link-local (including cloud metadata),
// carrier-grade NAT, multicast, broadcast, benchmarking and reserved
// addresses, in IPv4, IPv6 and IPv4-mapped IPv6 form. The invalid zero Addr
// is forbidden too, so that callers fail closed.
func ForbiddenIP(ip netip.Addr) bool {
	return forbiddenReason(ip) != ""
}

// forbiddenReason returns why ip is forbidden, or "" if it is allowed; the
// reason makes refusal messages self-explanatory in error columns and CLIs.
func forbiddenReason(ip netip.Addr) string {
	if !ip.IsValid() {
		return "invalid address"
	}
	// Zones and the ::ffff:a.b.c.d spelling must not let an address slip
	// past the IPv4 ranges.
	ip = ip.WithZone("").Unmap()
	if nat64.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	for _, p := range forbiddenPrefixes {
		if p.prefix.Contains(ip) {
			return p.reason
		}
	}
	return ""
}

// CheckURL validates a webhook URL when it is configured, so an admin gets
// an immediate, readable refusal instead of a failed delivery later. It
// requires an http or https scheme and a host, refuses credentials embedded
// in the URL, and, unless allowPrivate is set, refuses forbidden literal IPs
// and localhost names. Other hostnames are deliberately not resolved here:
// the answer could change before delivery, so the client checks the resolved
// address at connect time instead. Refusals of the target address wrap
// ErrForbiddenTarget.
func CheckURL(raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the raw URL, which may contain credentials.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("invalid webhook URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		if u.Scheme == "" {
			return errors.New("invalid webhook URL: missing scheme, want http or https")
		}
		return fmt.Errorf("invalid webhook URL: scheme %q not allowed, want http or https", u.Scheme)
	}
	if u.User != nil {
		return errors.New("invalid webhook URL: credentials in the URL are not allowed")
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("invalid webhook URL: missing host")
	}
	if allowPrivate {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if reason := forbiddenReason(ip); reason != "" {
			return fmt.Errorf("%w: %s (%s)", ErrForbiddenTarget, host, reason)
		}
		return nil
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return fmt.Errorf("%w: %s (localhost)", ErrForbiddenTarget, host)
	}
	return nil
}
