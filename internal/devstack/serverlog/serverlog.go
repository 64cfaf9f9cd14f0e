// Package serverlog reads the log file of a server the dev stack runs as a
// child process (pgcluster's PostgreSQL, natsserver's nats-server binary) for
// the error of a start that failed: what the server wrote since the start
// began, and the last lines of it.
//
// A start notes End of the log before it runs the server; when the start
// fails, ReadFrom that offset is what this start wrote (the file keeps the
// runs before it), and Tail of it goes into the error.
package serverlog

import (
	"io"
	"os"
	"strings"
)

// End returns the size of the file at path, the offset where what is
// written next begins; 0 when there is no such file yet.
func End(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// ReadFrom returns the content of path from offset on; nil when unreadable.
func ReadFrom(path string, offset int64) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil
	}
	b, _ := io.ReadAll(f)
	return b
}

// Tail returns the last lines of a command's output or a log, each ending in
// a newline, for an error; "" when b holds nothing.
func Tail(b []byte) string {
	const maxLines = 20
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	s := strings.Join(lines, "\n")
	if s == "" {
		return ""
	}
	return s + "\n"
}
