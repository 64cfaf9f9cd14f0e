package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// hs256Token is the access token Supabase Auth would give user sub, signed
// with secret (the relay's EVENTBUS_JWT_SECRET) and valid for an hour.
func hs256Token(t *testing.T, secret, sub string) string {
	t.Helper()
	return jwtToken(t, `{"alg":"HS256","typ":"JWT"}`, map[string]any{"sub": sub, "aud": "authenticated", "role": "authenticated",
		"exp": time.Now().Add(time.Hour).Unix()}, func(unsigned []byte) []byte {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(unsigned)
		return m.Sum(nil)
	})
}

// orgAdmins makes each user an admin of its organization (pairs of profile
// id, organization id) and returns their HS256 tokens signed with secret, in
// order.
func (e *env) orgAdmins(secret string, userOrg ...string) []string {
	e.t.Helper()
	require.Zero(e.t, len(userOrg)%2, "orgAdmins takes pairs of user and organization")
	var tokens []string
	for i := 0; i < len(userOrg); i += 2 {
		_, err := e.db.Exec(e.t.Context(), `INSERT INTO public.profiles (id, organization_id, role) VALUES ($1, $2, 'admin')`,
			userOrg[i], userOrg[i+1])
		require.NoError(e.t, err)
		tokens = append(tokens, hs256Token(e.t, secret, userOrg[i]))
	}
	return tokens
}
