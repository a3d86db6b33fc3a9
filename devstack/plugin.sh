#!/bin/bash
#
# devstack/plugin.sh: nova-ha devstack plugin, called by stack.sh, unstack.sh
# and clean.sh as `plugin.sh MODE [PHASE]`. local.conf:
#
#   [[local|localrc]]
#   enable_plugin nova-ha https://opendev.org/x/nova-ha
#
# Functions: devstack/lib/nova-ha; variables: devstack/settings.

# shellcheck source=lib/nova-ha
source "$(dirname "${BASH_SOURCE[0]}")/lib/nova-ha"

if is_service_enabled nova-ha; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing nova-ha"
        install_nova_ha

    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring nova-ha"
        create_nova_ha_dirs
        if is_service_enabled n-sch; then
            configure_nova_ha_scheduler "$NOVA_CONF"
        fi
        if is_service_enabled nova-ha-evacuator && is_service_enabled keystone; then
            create_nova_ha_accounts
        fi
        configure_nova_ha
        if is_service_enabled nova-ha-fencing; then
            configure_nova_ha_fencing
        fi

    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        echo_summary "Starting nova-ha"
        if is_service_enabled nova-ha-evacuator; then
            init_nova_ha
        fi
        start_nova_ha

    elif [[ "$1" == "stack" && "$2" == "test-config" ]]; then
        # After stack.sh mapped the compute hosts to their cell
        # (discover_hosts): aggregates need mapped hosts.
        if is_service_enabled n-api; then
            echo_summary "Creating nova-ha topology aggregates"
            create_nova_ha_topology
        fi
    fi

    if [[ "$1" == "unstack" ]]; then
        stop_nova_ha
    fi

    if [[ "$1" == "clean" ]]; then
        cleanup_nova_ha
    fi
fi
