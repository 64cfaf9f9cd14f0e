package serverlog_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/eventbus/eventbus/internal/devstack/serverlog"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestReadFromEnd(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "server.log")
	require.Zero(t, serverlog.End(path), "no file yet")
	require.Nil(t, serverlog.ReadFrom(path, 0), "no file yet")

	require.NoError(t, os.WriteFile(path, []byte("first run\n"), 0o644))
	end := serverlog.End(path)
	require.EqualValues(t, len("first run\n"), end)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("second run\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.Equal(t, "second run\n", string(serverlog.ReadFrom(path, end)), "only what was written since")
}

func TestTail(t *testing.T) {
	t.Parallel()
	require.Empty(t, serverlog.Tail(nil))
	require.Empty(t, serverlog.Tail([]byte("\n\n")))
	require.Equal(t, "one\ntwo\n", serverlog.Tail([]byte("one\ntwo")))

	var lines []string
	for i := 1; i <= 25; i++ {
		lines = append(lines, "line "+strconv.Itoa(i))
	}
	tail := serverlog.Tail([]byte(strings.Join(lines, "\n") + "\n"))
	require.Equal(t, strings.Join(lines[5:], "\n")+"\n", tail, "the last 20 lines")
}
