#!/bin/bash
# nova-ha topology of a two-rack cloud, as host aggregate metadata
# (doc/scheduling.md "Topology: host aggregate metadata").
#
#   rack r1, power domain pdu-1: cmp-r1-01 cmp-r1-02
#   rack r2, power domain pdu-2: cmp-r2-01 cmp-r2-02
#   all four hosts certified for SAL 1 (and so for SAL 2 and 3), with a
#   worst live-migration interruption of 300 ms
#
# Run it with admin credentials (OS_CLOUD or OS_* variables) after putting
# your host names below (nova's compute service host names). It creates
# aggregates, so run it once; change an existing aggregate with
# `openstack aggregate set --property KEY=VALUE NAME`.
# Check the result with: nova-ha-status upgrade check
#
# Keys: ha:rack and ha:power_domain are levels of [topology] levels
# (default host,rack,power_domain,availability_zone); a host must be in at
# most one domain per level, and each rack in one power domain. ha:sal=N
# certifies the hosts for Service Availability Level N (1 strictest .. 3).
# ha:live_migration_downtime_ms=N is compared with a flavor's
# ha:max_interruption_ms.
set -euo pipefail

OPENSTACK=${OPENSTACK:-openstack}
RACK_R1_HOSTS="cmp-r1-01 cmp-r1-02"
RACK_R2_HOSTS="cmp-r2-01 cmp-r2-02"

# Racks.
$OPENSTACK aggregate create --property ha:rack=r1 rack-r1
for host in $RACK_R1_HOSTS; do
    $OPENSTACK aggregate add host rack-r1 "$host"
done
$OPENSTACK aggregate create --property ha:rack=r2 rack-r2
for host in $RACK_R2_HOSTS; do
    $OPENSTACK aggregate add host rack-r2 "$host"
done

# Power domains (one PDU feed per rack here; a power domain may hold
# several racks, never the other way round).
$OPENSTACK aggregate create --property ha:power_domain=pdu-1 power-pdu-1
for host in $RACK_R1_HOSTS; do
    $OPENSTACK aggregate add host power-pdu-1 "$host"
done
$OPENSTACK aggregate create --property ha:power_domain=pdu-2 power-pdu-2
for host in $RACK_R2_HOSTS; do
    $OPENSTACK aggregate add host power-pdu-2 "$host"
done

# SAL certification: hosts that passed the SAL 1 acceptance tests (both
# racks, so a SAL 1 VNF can keep one member per rack).
$OPENSTACK aggregate create --property ha:sal=1 sal1-hosts
$OPENSTACK aggregate set --property ha:live_migration_downtime_ms=300 \
    sal1-hosts
for host in $RACK_R1_HOSTS $RACK_R2_HOSTS; do
    $OPENSTACK aggregate add host sal1-hosts "$host"
done
