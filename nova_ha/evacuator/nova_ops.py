"""Moved to :mod:`nova_ha.nova_ops`, nova-ha's one Nova API wrapper
(shared with maintenance). These names stay importable from here for code
not yet updated; new code imports ``nova_ha.nova_ops``."""

from nova_ha.nova_ops import (  # noqa: F401 -- re-exported
    MIGRATION_DONE, MIGRATION_FAILED, NovaOps, _parse_time, created_before,
    server_fault, utcnow)
