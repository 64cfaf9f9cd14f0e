package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/eventbus/eventbus/internal/devstack/pgcluster"
)

// RequirePostgres skips the test unless the PostgreSQL that NewPostgres
// starts (EVENTBUS_TEST_PG_BINDIR, else the machine's) is at least
// minVersion (server_version_num, e.g. 170000), saying how to run it.
func RequirePostgres(t testing.TB, minVersion int) {
	t.Helper()
	version, binDir, err := pgcluster.ServerVersionNum(t.Context(), os.Getenv(PGBinDirEnv))
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if version < minVersion {
		major := minVersion / 10000
		t.Skipf("needs PostgreSQL %d or newer; %s is %d.%d. Run it with: %s=$(scripts/install-postgres.sh %d) go test %s -run '%s'",
			major, binDir, version/10000, version%10000, PGBinDirEnv, major, packageDir(), t.Name())
	}
}

// packageDir is the test's package directory relative to the module root
// (tests run in their package's directory), "./e2e", for a command to paste.
func packageDir() string {
	wd, err := os.Getwd()
	if err != nil {
		return "<package>"
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			rel, err := filepath.Rel(dir, wd)
			if err != nil {
				return "<package>"
			}
			return "./" + filepath.ToSlash(rel)
		}
		if filepath.Dir(dir) == dir {
			return "<package>"
		}
	}
}

// NewStandby makes a hot standby of primary (pgcluster.StartStandby, with a
// physical slot named slot) for the test, stopped when the test ends.
func NewStandby(t testing.TB, primary *pgcluster.Cluster, slot string) *pgcluster.Cluster {
	t.Helper()
	standby, err := pgcluster.StartStandby(t.Context(), primary, pgcluster.StandbyOptions{Slot: slot, Fast: true, Log: Logger(t)})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := standby.Stop(); err != nil {
			t.Errorf("testenv: %v", fmt.Errorf("stop standby: %w", err))
		}
	})
	return standby
}
