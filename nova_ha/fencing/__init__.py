"""Fencing: power a failed compute host off and confirm it is off.

Public API (see doc/fencing.md):

* :func:`nova_ha.fencing.inventory.load` -- the validated inventory;
* :class:`nova_ha.fencing.fencer.Fencer` -- ``fence(host)`` returns a
  :class:`~nova_ha.fencing.fencer.FenceResult` whose ``outcome`` is
  :class:`~nova_ha.fencing.base.Outcome` FENCED, FAILED or UNREACHABLE;
* :func:`nova_ha.fencing.fencer.confirm` -- an operator's recorded
  confirmation, the only other way to FENCED;
* drivers (stevedore namespace ``nova_ha.fencing_drivers``) implement
  :class:`nova_ha.fencing.base.FenceDriver`.
"""
