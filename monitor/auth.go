package monitor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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

// authenticate identifies the caller of r: the admin token, or a user's JWT
// (see verifier) whose sub has a profile with role 'admin'.
func (s *Server) authenticate(ctx context.Context, r *http.Request) (caller, error) {
	token, ok := httpserver.Bearer(r)
	if !ok || token == "" {
		return caller{}, unauthorized("sign in: send Authorization: Bearer <EVENTBUS_ADMIN_TOKEN or an admin's JWT>")
	}
	if s.tokenMatches(token) {
		return caller{}, nil
	}
	if s.jwt == nil || strings.Count(token, ".") != 2 {
		return caller{}, unauthorized("the bearer token is not valid")
	}
	claims, err := s.jwt.verify(ctx, token, time.Now())
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
