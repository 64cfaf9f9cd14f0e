package pgcluster

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// configFile holds the settings this package owns; postgresql.conf includes
// it. Its name predates the package: the dev environment's clusters include
// it by that name.
const configFile = "devstack.conf"

// includeConfig makes postgresql.conf include configFile, once.
func (p *Cluster) includeConfig() error {
	path := filepath.Join(p.dataDir, "postgresql.conf")
	conf, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("postgres: read config: %w", err)
	}
	include := fmt.Sprintf("include_if_exists = '%s'", configFile)
	if bytes.Contains(conf, []byte(include)) {
		return nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("postgres: write config: %w", err)
	}
	_, err = fmt.Fprintf(f, "\n# Settings managed by eventbus devstack, rewritten before each start.\n%s\n", include)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("postgres: write config: %w", err)
	}
	return nil
}

// writeConfig writes the settings of the next start (or reload) to configFile.
func (p *Cluster) writeConfig() error {
	settings := []string{
		"listen_addresses = '127.0.0.1'",
		fmt.Sprintf("port = %d", p.port),
		"unix_socket_directories = " + quote(p.sockDir),
		// Logical replication, with room for the slots of many parallel tests.
		"wal_level = logical",
		"max_replication_slots = 64",
		"max_wal_senders = 64",
		// Parallel tests each open a pool and a replication connection.
		"max_connections = 200",
	}
	if p.fast {
		settings = append(settings, "fsync = off", "full_page_writes = off")
	}
	settings = append(settings, p.settings...)
	conf := "# Written by eventbus devstack before each start; edits are lost.\n" +
		strings.Join(settings, "\n") + "\n"
	path := filepath.Join(p.dataDir, configFile)
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return fmt.Errorf("postgres: write config: %w", err)
	}
	if err := p.run.chown(path); err != nil {
		return fmt.Errorf("postgres: write config: %w", err)
	}
	return nil
}

// quote makes s a single-quoted postgresql.conf value.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
