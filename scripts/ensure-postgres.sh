#!/bin/sh
# Makes sure the PostgreSQL server binaries the tests run (initdb, pg_ctl,
# postgres) are on this machine; pgcluster looks for them in the same places.
# Installs them with apt-get when run as root on a Debian-like system.
set -eu

found() {
	if command -v pg_config >/dev/null 2>&1; then
		bindir=$(pg_config --bindir 2>/dev/null || true)
		if [ -n "$bindir" ] && [ -x "$bindir/initdb" ]; then
			return 0
		fi
	fi
	for initdb in /usr/lib/postgresql/*/bin/initdb; do
		if [ -x "$initdb" ]; then
			return 0
		fi
	done
	return 1
}

if found; then
	exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "PostgreSQL server binaries not found; installing them with apt-get" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y --no-install-recommends postgresql
	if found; then
		exit 0
	fi
	echo "PostgreSQL server binaries still not found after apt-get install postgresql" >&2
	exit 1
fi

echo "PostgreSQL server binaries (initdb) not found; install them, e.g. sudo apt-get install postgresql (Debian/Ubuntu) or brew install postgresql (macOS)" >&2
exit 1
