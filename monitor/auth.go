package monitor

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/httpserver"
)

// caller is who a request comes from, once authenticated.
type caller struct {
	// claims is the JWT's payload, as signed, for request.jwt.claims; nil for
	// the admin token, whose queries run as the relay's own connection.
	claims []byte
	sub    string
}

// authError is an authentication or authorization failure with its status.
type authError struct {
	status int
	msg    string
}

func (e *authError) Error() string { return e.msg }

func unauthorized(format string, args ...any) error {
	return &authError{status: http.StatusUnauthorized, msg: fmt.Sprintf(format, args...)}
}

// authenticate identifies the caller of r: the admin token, or an HS256 JWT
// whose sub has a profile with role 'admin'.
func (s *Server) authenticate(ctx context.Context, r *http.Request) (caller, error) {
	token, ok := httpserver.Bearer(r)
	if !ok || token == "" {
		return caller{}, unauthorized("sign in: send Authorization: Bearer <EVENTBUS_ADMIN_TOKEN or an admin's JWT>")
	}
	if s.tokenMatches(token) {
		return caller{}, nil
	}
	if s.opts.JWTSecret == "" || strings.Count(token, ".") != 2 {
		return caller{}, unauthorized("the bearer token is not valid")
	}
	claims, err := verifyJWT(token, []byte(s.opts.JWTSecret), time.Now())
	if err != nil {
		return caller{}, unauthorized("the JWT is not valid: %v", err)
	}
	var role string
	err = s.opts.Pool.QueryRow(ctx, `SELECT coalesce(role, '') FROM public.profiles WHERE id = $1::uuid`, claims.Sub).Scan(&role)
	if errors.Is(err, pgx.ErrNoRows) {
		return caller{}, &authError{status: http.StatusForbidden, msg: fmt.Sprintf("user %s has no profile: the monitor is for admins", claims.Sub)}
	}
	if err != nil {
		return caller{}, fmt.Errorf("look up the profile of user %s: %w", claims.Sub, err)
	}
	if role != "admin" {
		return caller{}, &authError{status: http.StatusForbidden, msg: fmt.Sprintf("user %s is not an admin (profiles.role = %q): the monitor is for admins", claims.Sub, role)}
	}
	return caller{claims: claims.raw, sub: claims.Sub}, nil
}

// jwtClaims are the claims the monitor reads, and the payload as signed.
type jwtClaims struct {
	Sub string   `json:"sub"`
	Exp *float64 `json:"exp"`
	Nbf *float64 `json:"nbf"`
	raw []byte
}

// clockSkew is the leeway allowed on nbf, for clocks slightly apart.
const clockSkew = 30 * time.Second

// verifyJWT checks an HS256 JWT's signature against secret and its time
// claims against now (exp required), and returns its claims. It accepts no
// other algorithm: the header must say HS256.
func verifyJWT(token string, secret []byte, now time.Time) (jwtClaims, error) {
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
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(header, &h); err != nil {
		return c, errors.New("its header is not JSON")
	}
	if h.Alg != "HS256" {
		return c, fmt.Errorf("algorithm %q: only HS256 is accepted", h.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return c, errors.New("its signature is not base64url")
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return c, errors.New("bad signature (is EVENTBUS_JWT_SECRET the project's JWT secret?)")
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
	}
	return c, nil
}

// inTx runs fn in a transaction as the caller: for a JWT, as the role
// authenticated with request.jwt.claims set, so that the database's row-level
// security limits what fn sees and does to the caller's organization; for the
// admin token, as the relay's own connection.
func (s *Server) inTx(ctx context.Context, c caller, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.opts.Pool, func(tx pgx.Tx) error {
		if c.claims != nil {
			if _, err := tx.Exec(ctx, `SET LOCAL ROLE authenticated`); err != nil {
				return fmt.Errorf("switch to the role authenticated (the relay's database role must be a member of it): %w", err)
			}
			if _, err := tx.Exec(ctx, `SELECT set_config('request.jwt.claims', $1, true), set_config('request.jwt.claim.sub', $2, true)`,
				string(c.claims), c.sub); err != nil {
				return fmt.Errorf("set request.jwt.claims: %w", err)
			}
		}
		return fn(tx)
	})
}
