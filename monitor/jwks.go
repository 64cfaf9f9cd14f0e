package monitor

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/eventbus/eventbus/internal/periodic"
)

// publicKey is one signing key of the JWKS and the one algorithm it verifies.
type publicKey struct {
	alg string // ES256 (ec) or RS256 (rsa)
	ec  *ecdsa.PublicKey
	rsa *rsa.PublicKey
}

func (k publicKey) verify(alg, kid string, signed, sig []byte) error {
	if alg != k.alg {
		return fmt.Errorf("algorithm %s, but key %q is an %s key", alg, kid, k.alg)
	}
	sum := sha256.Sum256(signed)
	switch {
	case k.ec != nil:
		// JWS carries r and s as two 32-byte big-endian numbers, not ASN.1.
		if len(sig) != 64 || !ecdsa.Verify(k.ec, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			return fmt.Errorf("%w (key %q of EVENTBUS_JWKS_URL)", errBadSignature, kid)
		}
	case k.rsa != nil:
		if rsa.VerifyPKCS1v15(k.rsa, crypto.SHA256, sum[:], sig) != nil {
			return fmt.Errorf("%w (key %q of EVENTBUS_JWKS_URL)", errBadSignature, kid)
		}
	}
	return nil
}

// jwk is a JSON Web Key (RFC 7517) as Supabase's JWKS lists it.
type jwk struct {
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
	Use    string   `json:"use"`
	KeyOps []string `json:"key_ops"`
	Alg    string   `json:"alg"`
	Crv    string   `json:"crv"`
	X      string   `json:"x"`
	Y      string   `json:"y"`
	N      string   `json:"n"`
	E      string   `json:"e"`
}

// minRSABits is the smallest RSA modulus accepted.
const minRSABits = 2048

// publicKey returns the key k describes, if it is a signing key of a kind
// the monitor verifies: EC P-256 (ES256) or RSA (RS256). Symmetric keys
// (kty oct) are never taken from a URL.
func (k jwk) publicKey() (publicKey, error) {
	b64 := base64.RawURLEncoding
	switch {
	case k.Kid == "":
		return publicKey{}, errors.New("no kid")
	case k.Use != "" && k.Use != "sig":
		return publicKey{}, fmt.Errorf("use %q, not sig", k.Use)
	case k.KeyOps != nil && !slices.Contains(k.KeyOps, "verify"):
		return publicKey{}, fmt.Errorf("key_ops %q lacks verify", k.KeyOps)
	}
	switch k.Kty {
	case "EC":
		if k.Crv != "P-256" || (k.Alg != "" && k.Alg != "ES256") {
			return publicKey{}, fmt.Errorf("EC key of curve %q and alg %q: only P-256 with ES256", k.Crv, k.Alg)
		}
		x, errX := b64.DecodeString(k.X)
		y, errY := b64.DecodeString(k.Y)
		if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
			return publicKey{}, errors.New("x and y are not 32 bytes of base64url each")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), slices.Concat([]byte{4}, x, y))
		if err != nil {
			return publicKey{}, err
		}
		return publicKey{alg: "ES256", ec: pub}, nil
	case "RSA":
		if k.Alg != "" && k.Alg != "RS256" {
			return publicKey{}, fmt.Errorf("RSA key of alg %q: only RS256", k.Alg)
		}
		n, errN := b64.DecodeString(k.N)
		e, errE := b64.DecodeString(k.E)
		if errN != nil || errE != nil || len(e) == 0 || len(e) > 4 {
			return publicKey{}, errors.New("n and e are not base64url numbers")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < minRSABits || pub.E < 3 || pub.E%2 == 0 {
			return publicKey{}, fmt.Errorf("RSA key of %d bits and exponent %d: at least %d bits and an odd exponent", pub.N.BitLen(), pub.E, minRSABits)
		}
		return publicKey{alg: "RS256", rsa: pub}, nil
	default:
		return publicKey{}, fmt.Errorf("key type %q: only EC (ES256) and RSA (RS256)", k.Kty)
	}
}

// parseJWKS reads a JWK Set: the keys the monitor can use by kid, and why
// each other key was left out.
func parseJWKS(body []byte) (map[string]publicKey, []string, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil || set.Keys == nil {
		return nil, nil, errors.New(`not a JWK Set (a JSON object with "keys")`)
	}
	keys := make(map[string]publicKey, len(set.Keys))
	var skipped []string
	for _, k := range set.Keys {
		pub, err := k.publicKey()
		if err == nil && keys[k.Kid].alg != "" {
			err = errors.New("a second key of this kid")
		}
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("kid %q: %v", k.Kid, err))
			continue
		}
		keys[k.Kid] = pub
	}
	return keys, skipped, nil
}

// Timing and size of the key set's fetches.
const (
	jwksRefreshEvery = 10 * time.Minute // a good set is fetched again after this
	jwksTick         = 30 * time.Second // Run's period: a failed fetch is retried this often
	jwksMinGap       = 30 * time.Second // an unknown kid fetches at most this often
	jwksTimeout      = 10 * time.Second
	jwksMaxBytes     = 1 << 20
)

// keySet is the JWKS of EVENTBUS_JWKS_URL: fetched when Run starts, again
// every jwksRefreshEvery (every jwksTick while fetches fail), and when a
// token names a kid it does not hold, at most once per jwksMinGap, so that a
// rotated key works at once and random kids cannot make the relay hammer the
// URL. A failed fetch keeps the last good set, and says so in the log.
type keySet struct {
	url    string
	client *http.Client
	log    *slog.Logger
	// refreshEvery, tick and minGap are the jwks* constants; tests shorten them.
	refreshEvery, tick, minGap time.Duration

	fetching sync.Mutex // one fetch at a time

	mu        sync.Mutex
	keys      map[string]publicKey
	lastTry   time.Time
	lastGood  time.Time
	lastErr   error
	lastKids  string // the kids of the set last logged
	lastSkips string // and its keys left out
}

func newKeySet(url string, log *slog.Logger) *keySet {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DisableKeepAlives = true // a fetch every few minutes: no idle connection to own
	return &keySet{
		url: url,
		client: &http.Client{Transport: transport, CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != via[0].URL.Scheme || len(via) > 3 {
				return fmt.Errorf("redirected to %s: the key set must stay on %s", req.URL.Redacted(), via[0].URL.Scheme)
			}
			return nil
		}},
		log:          log,
		refreshEvery: jwksRefreshEvery, tick: jwksTick, minGap: jwksMinGap,
	}
}

// Run keeps the key set fresh until ctx ends.
func (ks *keySet) Run(ctx context.Context) {
	periodic.Run(ctx, ks.tick, true, func(ctx context.Context) {
		ks.mu.Lock()
		due := ks.lastErr != nil || ks.lastGood.IsZero() || time.Since(ks.lastGood) >= ks.refreshEvery
		ks.mu.Unlock()
		if due {
			ks.refresh(ctx, false)
		}
	})
}

// key returns the key of kid, fetching the set again (see keySet) when it
// does not hold kid.
func (ks *keySet) key(ctx context.Context, kid string) (publicKey, error) {
	if kid == "" {
		return publicKey{}, errors.New("it has no kid, so no key of EVENTBUS_JWKS_URL can check it")
	}
	if k, ok := ks.lookup(kid); ok {
		return k, nil
	}
	// The caller may hang up; the fetch serves the callers after it too.
	ks.refresh(context.WithoutCancel(ctx), true)
	if k, ok := ks.lookup(kid); ok {
		return k, nil
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.lastErr != nil && ks.keys == nil {
		return publicKey{}, fmt.Errorf("unknown key id %q: the key set of EVENTBUS_JWKS_URL could not be fetched yet", kid)
	}
	return publicKey{}, fmt.Errorf("unknown key id %q: not in the key set of EVENTBUS_JWKS_URL", kid)
}

func (ks *keySet) lookup(kid string) (publicKey, bool) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	k, ok := ks.keys[kid]
	return k, ok
}

// refresh fetches the set and keeps it when it is a JWK Set; onDemand (an
// unknown kid) fetches only when the last attempt is minGap old.
func (ks *keySet) refresh(ctx context.Context, onDemand bool) {
	ks.fetching.Lock()
	defer ks.fetching.Unlock()
	ks.mu.Lock()
	recent := !ks.lastTry.IsZero() && time.Since(ks.lastTry) < ks.minGap
	ks.mu.Unlock()
	if onDemand && recent {
		return
	}
	keys, skipped, err := ks.fetch(ctx)

	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.lastTry, ks.lastErr = time.Now(), err
	if err != nil {
		ks.log.Warn("monitor: fetch the JWKS; keeping the last good key set", "url", ks.url, "err", err, "keys", len(ks.keys))
		return
	}
	ks.keys, ks.lastGood = keys, ks.lastTry
	kids := make([]string, 0, len(keys))
	for kid, k := range keys {
		kids = append(kids, kid+" ("+k.alg+")")
	}
	sort.Strings(kids)
	if kidList, skips := strings.Join(kids, ", "), strings.Join(skipped, "; "); kidList != ks.lastKids || skips != ks.lastSkips {
		ks.lastKids, ks.lastSkips = kidList, skips
		if len(keys) == 0 {
			ks.log.Warn("monitor: the JWKS holds no key the monitor can use: ES256 and RS256 tokens are refused", "url", ks.url, "left_out", skips)
		} else {
			ks.log.Info("monitor: JWKS keys", "url", ks.url, "keys", kidList, "left_out", skips)
		}
	}
}

func (ks *keySet) fetch(ctx context.Context) (map[string]publicKey, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ks.url, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := ks.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: %s", ks.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes+1))
	switch {
	case err != nil:
		return nil, nil, fmt.Errorf("GET %s: %w", ks.url, err)
	case len(body) > jwksMaxBytes:
		return nil, nil, fmt.Errorf("GET %s: more than %d bytes", ks.url, jwksMaxBytes)
	}
	return parseJWKS(body)
}
