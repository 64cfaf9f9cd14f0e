#!/usr/bin/env bash
# Runs the tests that touch PostgreSQL on other server versions than the
# machine's own (which `make test` covers): every package that starts a
# cluster, end-to-end tests included, with -race, once per version.
#
#   scripts/test-pg-matrix.sh            # 14 16 17 18
#   scripts/test-pg-matrix.sh 17         # one version
#
# Each version's binaries come from scripts/install-postgres.sh (cached).
# Prints the seconds each version took; exits non-zero when any failed, after
# running them all.
set -uo pipefail
cd "$(dirname "$0")/.."

versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(14 16 17 18)
# The packages whose tests run against PostgreSQL.
packages=(./cdc ./schema ./outbox ./relay ./monitor ./catalog ./schedule ./webhook ./internal/devstack/pgcluster ./internal/testenv ./e2e)

failed=()
summary=()
for v in "${versions[@]}"; do
	if ! bindir=$(scripts/install-postgres.sh "$v"); then
		failed+=("$v (install)")
		continue
	fi
	echo "== PostgreSQL $v: $bindir"
	start=$SECONDS
	if EVENTBUS_TEST_PG_BINDIR=$bindir go test -race -count=1 -timeout 20m "${packages[@]}"; then
		result=ok
	else
		result=FAIL
		failed+=("$v")
	fi
	summary+=("PostgreSQL $v: $result in $((SECONDS - start)) s")
done
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
	echo "test-pg-matrix: failed on PostgreSQL ${failed[*]}" >&2
	exit 1
fi
