#!/bin/sh
# Builds the nats-server release VERSION (e.g. 2.10.27) from the Go module
# proxy into a cache directory, once, and prints the binary's path as the
# last line of stdout:
#
#	bin=$(scripts/install-nats-server.sh 2.10.27)
#	EVENTBUS_TEST_NATS_SERVER=$bin go test ./e2e
#
# The cache is $EVENTBUS_CACHE, else /var/cache/eventbus as root, else
# ~/.cache/eventbus (as scripts/install-postgres.sh), + nats-server/VERSION/.
# Progress and build errors go to stderr.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 VERSION   (e.g. 2.10.27)" >&2
	exit 2
fi
version=${1#v}
case $version in
*[!0-9.]* | '' | .* | *. | *..*)
	echo "$0: version $1: want MAJOR.MINOR.PATCH, e.g. 2.10.27" >&2
	exit 2
	;;
esac

. "$(dirname "$0")/cache-dir.sh"
dir=$cache/nats-server/$version
bin=$dir/nats-server
if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$dir"
# Built into a directory of its own and renamed into place, so a concurrent
# run, or one interrupted mid-build, never leaves a partial binary at $bin.
tmp=$(mktemp -d "$dir/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "building nats-server v$version into $dir" >&2
start=$(date +%s)
# CGO_ENABLED=0: the release binaries are static too, and the build then needs
# no C toolchain. GOFLAGS is cleared so that the caller's (e.g. -race, -mod)
# do not change what is built; GOTOOLCHAIN=local: build with this Go, never a
# downloaded one.
GOBIN=$tmp CGO_ENABLED=0 GOFLAGS= GOTOOLCHAIN=local \
	go install "github.com/nats-io/nats-server/v2@v$version" >&2
mv "$tmp/nats-server" "$bin"
echo "built nats-server v$version in $(($(date +%s) - start))s" >&2
echo "$bin"
