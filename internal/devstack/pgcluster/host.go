package pgcluster

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// findBinDir returns the directory of the PostgreSQL server binaries:
// pg_config's when it holds initdb (it may belong to a client-only package),
// else the newest /usr/lib/postgresql/*/bin.
func findBinDir(ctx context.Context) (string, error) {
	if out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if isExecutable(filepath.Join(dir, "initdb")) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin") // the pattern is valid
	dirs = slices.DeleteFunc(dirs, func(d string) bool { return !isExecutable(filepath.Join(d, "initdb")) })
	if len(dirs) == 0 {
		return "", ErrNotInstalled
	}
	version := func(dir string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64) // "15", "9.6"
		return v
	}
	return slices.MaxFunc(dirs, func(a, b string) int {
		va, vb := version(a), version(b)
		switch {
		case va < vb:
			return -1
		case va > vb:
			return 1
		}
		return 0
	}), nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// osUser is the unprivileged account that runs initdb and the server when
// this process is root, which PostgreSQL refuses to run as.
type osUser struct {
	name   string
	uid    uint32
	gid    uint32
	groups []uint32 // supplementary groups, including gid
}

// serverUser returns the OS user postgres when this process is root, and nil
// (run as ourselves) otherwise.
func serverUser() (*osUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	const name = "postgres"
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("postgres: running as root, which PostgreSQL refuses, and no OS user %q to run it as: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres: uid of OS user %q: %w", name, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres: gid of OS user %q: %w", name, err)
	}
	ou := &osUser{name: name, uid: uint32(uid), gid: uint32(gid)}
	gids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("postgres: groups of OS user %q: %w", name, err)
	}
	for _, g := range gids {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			ou.groups = append(ou.groups, uint32(n))
		}
	}
	if !slices.Contains(ou.groups, ou.gid) {
		ou.groups = append(ou.groups, ou.gid)
	}
	return ou, nil
}

func (u *osUser) credential() *syscall.Credential {
	return &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: u.groups}
}

// chown gives path to u; a nil u (not root) leaves it alone.
func (u *osUser) chown(path string) error {
	if u == nil {
		return nil
	}
	return os.Chown(path, int(u.uid), int(u.gid))
}

// checkSearchable reports the first directory from / down to dir that u may
// not enter, which would make initdb fail with a less helpful message.
func (u *osUser) checkSearchable(dir string) error {
	if u == nil {
		return nil
	}
	var path string
	for _, elem := range strings.Split(filepath.Clean(dir), string(filepath.Separator)) {
		path += elem + string(filepath.Separator)
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		if !u.canSearch(fi) {
			return fmt.Errorf("OS user %s cannot enter %s (mode %v): use a directory it can reach, e.g. chmod 0755 it",
				u.name, path, fi.Mode().Perm())
		}
	}
	return nil
}

func (u *osUser) canSearch(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true // unknown: let initdb decide
	}
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == u.uid:
		return perm&0o100 != 0
	case slices.Contains(u.groups, st.Gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}
