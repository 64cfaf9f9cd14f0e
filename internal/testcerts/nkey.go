package testcerts

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nkeys"
)

// NkeyUser creates a NATS user nkey and writes its seed to a file in
// t.TempDir(): the server is configured with pub, the client with seedFile.
func NkeyUser(t testing.TB) (pub, seedFile string) {
	t.Helper()
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	if pub, err = user.PublicKey(); err != nil {
		t.Fatal(err)
	}
	seed, err := user.Seed()
	if err != nil {
		t.Fatal(err)
	}
	seedFile = filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return pub, seedFile
}
