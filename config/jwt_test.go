package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestJWTVariablesRefuseBadValues(t *testing.T) {
	for _, tc := range []struct{ variable, value string }{
		{"EVENTBUS_JWKS_URL", "::not a url"},
		{"EVENTBUS_JWKS_URL", "https://s3cret@%zz/jwks.json"},
		{"EVENTBUS_JWKS_URL", "jwks.json"},
		{"EVENTBUS_JWKS_URL", "https://"},
		{"EVENTBUS_JWKS_URL", "ftp://project.supabase.co/jwks.json"},
		{"EVENTBUS_JWKS_URL", "http://project.supabase.co/auth/v1/.well-known/jwks.json"},
		{"EVENTBUS_JWKS_URL", "https://user:s3cret@project.supabase.co/auth/v1/.well-known/jwks.json"},
		{"EVENTBUS_JWT_AUDIENCE", ""},
		{"EVENTBUS_JWT_AUDIENCE", "  "},
		{"EVENTBUS_JWT_SECRET", "too-short-for-a-jwt-secret"},
	} {
		unsetAll(t)
		t.Setenv(tc.variable, tc.value)
		_, err := Load()
		var ce *Error
		if assert.ErrorAs(t, err, &ce, "%s=%q", tc.variable, tc.value) {
			assert.Equal(t, tc.variable, ce.Variable, "%s=%q", tc.variable, tc.value)
			assert.NotContains(t, err.Error(), "\n")
			assert.NotContains(t, err.Error(), "s3cret", "the message never shows a password")
		}
	}
}

func TestJWTVariables(t *testing.T) {
	unsetAll(t)
	c, err := Load()
	require.NoError(t, err)
	assert.Equal(t, "authenticated", c.JWTAudience, "Supabase's user tokens")
	assert.Empty(t, c.JWKSURL)

	for _, good := range []string{
		"https://abcdefghijklmnop.supabase.co/auth/v1/.well-known/jwks.json",
		"http://127.0.0.1:54321/auth/v1/.well-known/jwks.json", // supabase start
		"http://localhost:54321/auth/v1/.well-known/jwks.json",
		"http://[::1]:8000/jwks.json",
	} {
		unsetAll(t)
		t.Setenv("EVENTBUS_JWKS_URL", good)
		t.Setenv("EVENTBUS_JWT_AUDIENCE", "my-app")
		c, err := Load()
		require.NoError(t, err, good)
		assert.Equal(t, good, c.JWKSURL)
		assert.Equal(t, "my-app", c.JWTAudience)
	}
	unsetAll(t)
	t.Setenv("EVENTBUS_JWKS_URL", "https://p.supabase.co/auth/v1/.well-known/jwks.json")
	t.Setenv("EVENTBUS_JWT_SECRET", strings.Repeat("j", MinJWTSecretLen))
	_, err = Load()
	require.NoError(t, err, "both: HS256 and the JWKS")
}
