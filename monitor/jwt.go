package monitor

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/eventbus/eventbus/event"
)

// jwtClaims are the claims the monitor reads, and the payload as signed.
type jwtClaims struct {
	Sub  string   `json:"sub"`
	Exp  *float64 `json:"exp"`
	Nbf  *float64 `json:"nbf"`
	Aud  audience `json:"aud"`
	Role string   `json:"role"`
	raw  []byte
}

// audience is the aud claim: one string or a list of them (RFC 7519, 4.1.3).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud is neither a string nor a list of strings")
	}
	*a = many
	return nil
}

// clockSkew is the leeway allowed on nbf, for clocks slightly apart.
const clockSkew = 30 * time.Second

// userRole is the only role claim that signs in: a Supabase user's. The
// project's anon and service_role keys are JWTs too, signed with the same
// secret; machines use the admin token instead.
const userRole = "authenticated"

// verifier checks the JWTs of the monitor's callers. The token's alg chooses
// the key, and each key verifies one algorithm only: HS256 the secret
// (EVENTBUS_JWT_SECRET), ES256 and RS256 the EC P-256 or RSA key of the
// token's kid in the JWKS (EVENTBUS_JWKS_URL). So a token cannot make a
// public key serve as an HMAC secret (alg confusion), and none or any other
// alg is refused.
type verifier struct {
	secret   []byte  // HS256; nil: none accepted
	keys     *keySet // ES256, RS256; nil: none accepted
	audience string  // must be in aud
}

var errBadSignature = errors.New("bad signature")

// verify checks token's signature, its time claims against now (exp
// required), aud and role, and returns its claims.
func (v *verifier) verify(ctx context.Context, token string, now time.Time) (jwtClaims, error) {
	var c jwtClaims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, errors.New("not a JWT (header.payload.signature)")
	}
	header, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return c, errors.New("its header is not base64url")
	}
	var h struct {
		Alg  string   `json:"alg"`
		Kid  string   `json:"kid"`
		Crit []string `json:"crit"`
	}
	if err := json.Unmarshal(header, &h); err != nil {
		return c, errors.New("its header is not JSON")
	}
	if h.Crit != nil {
		return c, fmt.Errorf("its header names critical extensions %q, which the monitor does not know", h.Crit)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return c, errors.New("its signature is not base64url")
	}
	if err := v.checkSignature(ctx, h.Alg, h.Kid, []byte(parts[0]+"."+parts[1]), sig); err != nil {
		return c, err
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return c, errors.New("its payload is not base64url")
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return c, errors.New("its payload is not a JSON object of claims")
	}
	c.raw = payload
	switch {
	case c.Exp == nil:
		return c, errors.New("it has no exp claim")
	case now.After(time.Unix(int64(*c.Exp), 0)):
		return c, errors.New("it has expired")
	case c.Nbf != nil && now.Add(clockSkew).Before(time.Unix(int64(*c.Nbf), 0)):
		return c, errors.New("it is not valid yet (nbf)")
	case !event.ValidID(c.Sub):
		return c, errors.New("its sub claim is not a user id (a UUID)")
	case !slices.Contains(c.Aud, v.audience):
		return c, fmt.Errorf("its aud claim %q does not hold %q (EVENTBUS_JWT_AUDIENCE)", []string(c.Aud), v.audience)
	case c.Role != userRole:
		return c, fmt.Errorf("its role claim is %q: only %s users sign in (machines use EVENTBUS_ADMIN_TOKEN)", c.Role, userRole)
	}
	return c, nil
}

// checkSignature verifies sig over signed with the key alg and kid name.
func (v *verifier) checkSignature(ctx context.Context, alg, kid string, signed, sig []byte) error {
	switch alg {
	case "HS256":
		if v.secret == nil {
			return errors.New("algorithm HS256: EVENTBUS_JWT_SECRET is not set, so no HS256 token is accepted")
		}
		mac := hmac.New(sha256.New, v.secret)
		mac.Write(signed)
		if !hmac.Equal(sig, mac.Sum(nil)) {
			return fmt.Errorf("%w (is EVENTBUS_JWT_SECRET the project's JWT secret?)", errBadSignature)
		}
		return nil
	case "ES256", "RS256":
		if v.keys == nil {
			return fmt.Errorf("algorithm %s: EVENTBUS_JWKS_URL is not set, so no %s token is accepted", alg, alg)
		}
		key, err := v.keys.key(ctx, kid)
		if err != nil {
			return err
		}
		return key.verify(alg, kid, signed, sig)
	default:
		return fmt.Errorf("algorithm %q: only HS256, ES256 and RS256 are accepted", alg)
	}
}
