"""``nova-ha report``: HA metrics (outages, downtime, time to recover).

Seed 004 §5.3: "VIM should provide data collection to calculate the HA
related metrics for VNFs". The journal already records every recovery
with a per-step timeline and per-instance outcome; this package turns it
into per-instance and per-server-group figures (doc/report.md).

* :mod:`nova_ha.report.collect` -- pure data collection from a
  :class:`nova_ha.journal.Journal` (no Nova, no rendering).
* :mod:`nova_ha.report.render` -- table / JSON / CSV text.
* :mod:`nova_ha.report.chart` -- SVG/PNG timeline (matplotlib, Agg).
* :mod:`nova_ha.report.cli` -- the ``nova-ha report`` command.
"""
