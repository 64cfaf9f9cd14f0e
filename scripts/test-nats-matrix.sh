#!/usr/bin/env bash
# Runs the end-to-end core delivery and broker fault tests, and natsserver's
# tests of a nats-server binary, against each NATS server version given
# (default: the oldest supported minor releases; the newest, go.mod's, is
# embedded by every other test run), each built once by
# scripts/install-nats-server.sh. Prints how long each version's tests took,
# and exits 1 when any version failed.
#
#	scripts/test-nats-matrix.sh                 # 2.10.27 2.11.17 2.12.15
#	scripts/test-nats-matrix.sh 2.10.27
set -uo pipefail
cd "$(dirname "$0")/.."

versions=("$@")
if [ ${#versions[@]} -eq 0 ]; then
	versions=(2.10.27 2.11.17 2.12.15)
fi
GO=${GO:-go}

# The tests that deliver events and the ones where the broker misbehaves:
# relay_test, order_test, backfill_test, bad_events_test, broker_faults_test,
# the NATS outages of faults_test, and cluster_test.
e2e_tests=(
	TestLeadTriggersDeliverSeedPayloads
	TestPublishEventIsDeliveredAndMarkedProcessed
	TestStatusUpdatesOfOneLeadArriveInCommitOrder
	TestPerAggregateOrder
	TestRowsFromBeforeTheFirstRunAreDelivered
	TestMigrateAndRunAdoptSeedDatabase
	TestBadEventsFailAfterRetriesAndTheRestFlows
	TestBadEventHonoursMaxRetries
	TestSlowBrokerIsBackPressure
	TestStreamNotBindingThePrefixIsRefused
	TestRefusalInThePubAckIsRetriedInPlace
	TestNATSOutageMidBurstLosesNothing
	TestRelayKilledDuringNATSOutageLosesNothing
	TestClusterFailoverMidBurstLosesNothing
)
e2e_pattern="^($(IFS='|'; echo "${e2e_tests[*]}"))\$"

scripts/ensure-postgres.sh || exit 1
summary=()
failed=0
total_start=$(date +%s)
for v in "${versions[@]}"; do
	start=$(date +%s)
	if ! bin=$(scripts/install-nats-server.sh "$v" | tail -n 1); then
		summary+=("nats-server $v: build FAILED")
		failed=1
		continue
	fi
	built=$(($(date +%s) - start))
	echo "=== nats-server $v ($bin)"
	start=$(date +%s)
	result=ok
	# -p 1: one package at a time, so natsserver's clusters do not compete
	# with the e2e tests' for the machine's cores.
	if ! EVENTBUS_TEST_NATS_SERVER=$bin $GO test -race -count=1 -timeout 20m -p 1 \
		-run "$e2e_pattern|^TestNATS.*Binary" ./internal/devstack/natsserver ./e2e; then
		result=FAILED
		failed=1
	fi
	secs=$(($(date +%s) - start))
	echo "=== nats-server $v: tests $result in ${secs}s"
	summary+=("nats-server $v: build ${built}s, tests $result in ${secs}s")
done
echo
printf '%s\n' "${summary[@]}"
echo "total: $(($(date +%s) - total_start))s"
exit $failed
