"""Database look-ups the filters make once per scheduling request.

A RequestSpec does not say where the other members of a server group run,
nor which operation (boot, live migration, cold migration, resize,
evacuation) the request is for. nova-scheduler can read nova's databases, so
the filters ask them, once per request:

- :meth:`NovaDBLookup.instances`: the host of each instance (the group's
  members and the instance being scheduled) and the in-progress migration
  records of those instances: one API-database query for the instance
  mappings, then two queries per cell holding any of them;
- :meth:`NovaDBLookup.domains`: the domain of each host that runs a member,
  from its aggregates in the API database (one query per such host). The
  filters cannot use the HostStates for this: a host that is full, disabled
  or down never reaches the filters.

Unit tests and the benchmark swap in an in-memory implementation with
:func:`nova_ha.scheduler.request.set_lookup`.
"""

import collections

from nova_ha import topology

#: Migration statuses of a move that has not ended yet ('finished' is a
#: cold migration or resize waiting for confirm or revert).
ACTIVE_STATUSES = ('accepted', 'queued', 'preparing', 'pre-migrating',
                   'migrating', 'running', 'post-migrating', 'finished',
                   'confirming', 'reverting')

LIVE_MIGRATION = 'live-migration'
MIGRATION = 'migration'
RESIZE = 'resize'
EVACUATION = 'evacuation'
#: Voluntary moves: ha_max_concurrent_moves limits these, not evacuations.
VOLUNTARY_MOVES = (LIVE_MIGRATION, MIGRATION, RESIZE)

Migration = collections.namedtuple(
    'Migration', 'instance_uuid migration_type status source_compute '
                 'dest_compute created_at id')


class LookupFailed(Exception):
    """The databases could not be read; the message says why."""


class Instances(collections.namedtuple('Instances',
                                       'hosts migrations missing',
                                       defaults=(frozenset(),))):
    """Result of :meth:`NovaDBLookup.instances`.

    :ivar hosts: {instance uuid: host or None} for instances found in a cell
    :ivar migrations: {instance uuid: [Migration]} in-progress migrations,
        newest first
    :ivar missing: uuids whose instance mapping names a cell that holds no
        (undeleted) record of them: a deleted member, or data the look-up
        could not read. Instances not scheduled yet (no cell) are not in it.
    """


class NovaDBLookup:
    """Reads nova's API and cell databases (inside nova-scheduler)."""

    def instances(self, context, uuids):
        from nova import context as nova_context
        from nova import objects
        uuids = sorted(set(u for u in uuids if u))
        if not uuids:
            return Instances({}, {})
        try:
            ctxt = context.elevated()
            mappings = objects.InstanceMappingList.get_by_instance_uuids(
                ctxt, uuids)
            by_cell = {}
            for mapping in mappings:
                if not mapping.obj_attr_is_set('cell_mapping'):
                    continue
                cell = mapping.cell_mapping
                if cell is None or cell.is_cell0():
                    continue   # not scheduled yet, or failed to build
                by_cell.setdefault(cell.uuid, (cell, []))[1].append(
                    mapping.instance_uuid)
            hosts, migrations = {}, {}
            wanted = set(uuids)
            in_cells = set()
            for cell, cell_uuids in by_cell.values():
                in_cells.update(cell_uuids)
                with nova_context.target_cell(ctxt, cell) as cctxt:
                    insts = objects.InstanceList.get_by_filters(
                        cctxt, {'uuid': cell_uuids, 'deleted': False},
                        expected_attrs=[])
                    for inst in insts:
                        hosts[inst.uuid] = inst.host
                    migs = objects.MigrationList.get_by_filters(
                        cctxt, {'status': list(ACTIVE_STATUSES)})
                    for mig in migs:
                        if mig.instance_uuid in wanted:
                            migrations.setdefault(
                                mig.instance_uuid, []).append(_migration(mig))
        except Exception as exc:  # never raise inside the scheduler
            raise LookupFailed('cannot read instances %s from nova\'s '
                               'databases: %s' % (', '.join(uuids), exc))
        for migs in migrations.values():
            migs.sort(key=lambda m: (m.created_at is not None,
                                     m.created_at, m.id or 0), reverse=True)
        return Instances(hosts, migrations, frozenset(in_cells - set(hosts)))

    def domains(self, context, hosts, level, levels, default_az):
        """{host: domain at `level`} (None, or topology.CONFLICT).

        One API-database query per host (and per aggregate key of the
        level), reading only the aggregates that carry the level's key.
        The caller checks that every host got an answer (a truncated answer
        must not read as "in no domain").
        """
        from nova import objects
        keys = topology.level_keys(level)
        out = {}
        try:
            ctxt = context.elevated()
            for host in sorted(set(hosts)):
                aggs = []
                for key in keys:
                    aggs.extend(objects.AggregateList.get_by_host(
                        ctxt, host, key=key))
                info = topology.describe_host(host, aggs, levels, default_az)
                out[host] = info.domains.get(level)
        except Exception as exc:   # never raise inside the scheduler
            raise LookupFailed('cannot read the aggregates of hosts %s: %s'
                               % (', '.join(sorted(set(hosts))), exc))
        return out


def _migration(mig):
    def get(name):
        return getattr(mig, name) if mig.obj_attr_is_set(name) else None
    return Migration(get('instance_uuid'), get('migration_type'),
                     get('status'), get('source_compute'),
                     get('dest_compute'), get('created_at'), get('id'))


class MemoryLookup:
    """In-memory stand-in for unit tests and the benchmark.

    :param hosts: {instance uuid: host}
    :param migrations: [Migration]
    :param topology: a :class:`nova_ha.topology.Topology` for member hosts
    """

    def __init__(self, hosts=None, migrations=(), topology_=None):
        self.hosts = dict(hosts or {})
        self.migrations = list(migrations)
        self.topology = topology_
        self.calls = collections.Counter()
        self.fail = None
        #: uuids reported as missing (mapped to a cell without a record)
        self.missing = set()
        #: hosts left out of domains() answers (a truncated answer)
        self.omit = set()

    def instances(self, context, uuids):
        self.calls['instances'] += 1
        if self.fail:
            raise LookupFailed(self.fail)
        uuids = set(uuids)
        migs = {}
        for m in self.migrations:
            if m.instance_uuid in uuids and m.status in ACTIVE_STATUSES:
                migs.setdefault(m.instance_uuid, []).append(m)
        return Instances({u: h for u, h in self.hosts.items()
                          if u in uuids and u not in self.missing},
                         migs, frozenset(self.missing & uuids))

    def domains(self, context, hosts, level, levels, default_az):
        self.calls['domains'] += 1
        if self.fail:
            raise LookupFailed(self.fail)
        known = self.topology._hosts if self.topology is not None else {}
        out = {}
        for host in hosts:
            if host in self.omit:
                continue
            info = known.get(host)
            if info is None:
                info = topology.describe_host(host, (), levels, default_az)
            out[host] = info.domains.get(level)
        return out
