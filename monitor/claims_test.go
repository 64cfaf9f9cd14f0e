package monitor

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// A JWT signs in only a user of this project: aud must hold
// EVENTBUS_JWT_AUDIENCE (Supabase's "authenticated") and role must be
// authenticated. Supabase's anon and service_role keys are JWTs signed with
// the same secret; they are refused whatever their sub (machines use the
// admin token).
func TestJWTAudienceAndRole(t *testing.T) {
	t.Parallel()
	e := setup(t)
	exp := time.Now().Add(time.Hour).Unix()
	claims := func(extra map[string]any) map[string]any {
		c := map[string]any{"sub": adminA, "exp": exp}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	for name, tc := range map[string]struct {
		claims map[string]any
		want   int
	}{
		"aud and role":                {claims(map[string]any{"aud": "authenticated", "role": "authenticated"}), http.StatusOK},
		"aud a list holding it":       {claims(map[string]any{"aud": []string{"other", "authenticated"}, "role": "authenticated"}), http.StatusOK},
		"no aud":                      {claims(map[string]any{"role": "authenticated"}), http.StatusUnauthorized},
		"another aud":                 {claims(map[string]any{"aud": "other-project", "role": "authenticated"}), http.StatusUnauthorized},
		"aud a list without it":       {claims(map[string]any{"aud": []string{"a", "b"}, "role": "authenticated"}), http.StatusUnauthorized},
		"aud not a string":            {claims(map[string]any{"aud": 7, "role": "authenticated"}), http.StatusUnauthorized},
		"no role":                     {claims(map[string]any{"aud": "authenticated"}), http.StatusUnauthorized},
		"service_role":                {claims(map[string]any{"aud": "authenticated", "role": "service_role"}), http.StatusUnauthorized},
		"anon":                        {claims(map[string]any{"aud": "authenticated", "role": "anon"}), http.StatusUnauthorized},
		"Supabase's service_role key": {map[string]any{"iss": "supabase", "ref": "abcdefgh", "role": "service_role", "iat": 1700000000, "exp": exp}, http.StatusUnauthorized},
	} {
		status, body := e.call(t, "GET", "/api/events", signJWT(t, jwtSecret, tc.claims), nil)
		assert.Equal(t, tc.want, status, "%s: %v", name, body)
	}
}
