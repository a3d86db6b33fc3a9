"""Build a :class:`nova_ha.capacity.model.Cloud` from Nova and placement.

Two sources, one result:

- :func:`from_api`: the Nova API (compute services, hypervisors,
  aggregates, servers with their flavor and -- microversion 2.100 --
  their scheduler hints, server groups) and the placement API
  (inventories and usages of each compute node's resource provider).
  ``nova-ha capacity check`` and the evacuator use it.
- :func:`from_nova_db`: nova's own databases, inside nova-scheduler
  (FailoverCapacityFilter): compute nodes (their resources are what
  placement was told), instances of every cell with their flavor, the
  request specs' scheduler hints (one API-database query), server groups,
  aggregates.

Free room of a host = (total - reserved) * allocation_ratio - used, per
VCPU, MEMORY_MB and DISK_GB. An instance needs its flavor's vCPUs, RAM and
root + ephemeral + swap disk (root 0 when it boots from a volume).
Hard anti-affinity rules: nova's ``anti-affinity`` group policy (host
level, ``max_server_per_host``) and nova-ha's hints, parsed by the
scheduler's own parser (:func:`nova_ha.scheduler.request.
anti_affinity_of`); a soft rule strands nothing and is ignored.
"""

import math
import urllib.parse

from nova_ha import topology
from nova_ha.capacity import model

COMPUTE_VERSION = '2.100'     # servers' scheduler_hints
# Hypervisors: 2.53 gives the compute node uuid (= resource provider) and
# the service host; from 2.88 the detail asks every compute for its uptime
# (one RPC call per hypervisor, a timeout for a dead one).
HYPERVISOR_VERSION = '2.53'
PLACEMENT_VERSION = '1.14'
RC = ('VCPU', 'MEMORY_MB', 'DISK_GB')


def _int(value, default=0):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def free_room(inventories, usages):
    """(vcpu, ram, disk) free from placement inventories and usages."""
    out = []
    for rc in RC:
        inv = inventories.get(rc)
        if not inv:
            out.append(0)
            continue
        cap = (inv.get('total', 0) - inv.get('reserved', 0)) * \
            inv.get('allocation_ratio', 1.0)
        out.append(int(math.floor(cap)) - _int(usages.get(rc)))
    return tuple(out)


def flavor_resources(flavor, boot_from_volume=False):
    disk = 0 if boot_from_volume else _int(flavor.get('disk'))
    disk += _int(flavor.get('ephemeral', flavor.get(
        'OS-FLV-EXT-DATA:ephemeral')))
    disk += int(math.ceil(_int(flavor.get('swap')) / 1024.0))
    ram = flavor.get('ram', flavor.get('memory_mb'))
    return (_int(flavor.get('vcpus')), _int(ram), disk)


def group_rules(group):
    """Hard rules of a nova server group's own policy."""
    policy = group.get('policy') or (group.get('policies') or [None])[0]
    if policy == 'anti-affinity':
        rules = group.get('rules') or {}
        return [model.Rule(topology.HOST,
                           _int(rules.get('max_server_per_host'), 1) or 1,
                           'server group policy anti-affinity')]
    return []


def hint_rules(hints, levels, problems, name):
    """Hard rules of an instance's nova-ha hints (scheduler's parser)."""
    from nova_ha.scheduler import request
    try:
        rule = request.anti_affinity_of(
            hints, topology.known_levels(levels))
    except request.BadInput as exc:
        problems.append('instance %s: %s (ignored)' % (name, exc))
        return []
    if rule is None or not rule.hard:
        return []
    return [model.Rule(rule.level, rule.max_per_domain, rule.source)]


def instance_of(uuid, name, host, flavor, hints, group, levels, problems,
                boot_from_volume=False, group_rule_list=()):
    from nova_ha.scheduler import request
    specs = flavor.get('extra_specs') or {}
    try:
        sal = request.parse_sal_specs(specs)
    except request.BadInput as exc:
        problems.append('instance %s: %s (treated as no SAL)' % (name, exc))
        sal = None
    rules = list(group_rule_list)
    if group:
        rules += hint_rules(hints, levels, problems, name)
    return model.Instance(
        uuid, host, flavor_resources(flavor, boot_from_volume), sal=sal,
        auto=str(specs.get('ha:recovery', 'auto')).strip() != 'none',
        priority=_int(specs.get('ha:recovery_priority'), 0),
        group=group, rules=rules if group else [], name=name)


def paged(get, path, key, version=COMPUTE_VERSION):
    """Every item of a paginated Nova list (follows ``<key>_links``)."""
    out = []
    url = path
    while url:
        body = get(url, version)
        out.extend(body.get(key, []))
        url = None
        for link in body.get('%s_links' % key, []):
            if link.get('rel') == 'next':
                parsed = urllib.parse.urlsplit(link['href'])
                p = parsed.path
                i = p.find('/', p.find('/v2') + 1) if '/v2' in p else -1
                url = (p[i:] if i >= 0 else p) + (
                    '?' + parsed.query if parsed.query else '')
    return out


def from_api(compute_get, placement_get, levels=topology.DEFAULT_LEVELS,
             default_az=topology.DEFAULT_AZ):
    """The Cloud from the APIs.

    :param compute_get: (path, microversion) -> JSON dict, Nova API
    :param placement_get: path -> JSON dict, placement API >= 1.14
    """
    problems = []
    services = {s['host']: s for s in compute_get(
        '/os-services?binary=nova-compute', COMPUTE_VERSION).get(
            'services', [])}
    aggregates = compute_get('/os-aggregates', COMPUTE_VERSION).get(
        'aggregates', [])
    topo = topology.Topology.from_aggregates(aggregates, hosts=services,
                                             levels=levels,
                                             default_az=default_az)
    problems += [str(c) for c in topo.conflicts] + topo.problems
    hypervisors = paged(compute_get, '/os-hypervisors/detail',
                         'hypervisors', HYPERVISOR_VERSION)
    free = {}
    for hv in hypervisors:
        host = (hv.get('service') or {}).get('host') or \
            hv.get('hypervisor_hostname')
        rp = hv['id']
        inv = placement_get('/resource_providers/%s/inventories' % rp).get(
            'inventories', {})
        use = placement_get('/resource_providers/%s/usages' % rp).get(
            'usages', {})
        room = free_room(inv, use)
        old = free.get(host)
        free[host] = room if old is None else tuple(
            a + b for a, b in zip(old, room))
    hosts = []
    for name in sorted(set(services) | set(free)):
        svc = services.get(name, {})
        info = topo.get(name)
        enabled = (svc.get('status') == 'enabled'
                   and svc.get('state', 'up') == 'up'
                   and not svc.get('forced_down'))
        hosts.append(model.Host(
            name, free.get(name, (0, 0, 0)),
            sal=info.sal if info else None,
            domains=dict(info.domains) if info else {}, enabled=enabled))
    groups = paged(compute_get, '/os-server-groups?all_projects=True',
                    'server_groups')
    member_of = {}
    for g in groups:
        for m in g.get('members') or ():
            member_of[m] = g
    servers = paged(compute_get, '/servers/detail?all_tenants=1',
                     'servers')
    instances = []
    for s in servers:
        host = s.get('OS-EXT-SRV-ATTR:host')
        if not host or s.get('status') in ('DELETED', 'SOFT_DELETED'):
            continue
        g = member_of.get(s['id'])
        instances.append(instance_of(
            s['id'], s.get('name') or s['id'], host, s.get('flavor') or {},
            s.get('scheduler_hints') or {}, g['id'] if g else None,
            levels, problems, boot_from_volume=not s.get('image'),
            group_rule_list=group_rules(g) if g else ()))
    aggs = {topology.aggregate_name(a): set(topology.aggregate_hosts(a))
            for a in aggregates}
    return model.Cloud(hosts, instances, levels, aggs, problems)


def compute_getter(sess, endpoint=None, endpoint_filter=None,
                   timeout=None):
    """compute_get(path, version) over a keystoneauth session."""
    def compute_get(path, version=COMPUTE_VERSION):
        kwargs = {'headers': {
            'OpenStack-API-Version': 'compute %s' % version,
            'X-OpenStack-Nova-API-Version': version}}
        if timeout:
            kwargs['timeout'] = timeout
        if endpoint:
            return sess.get(endpoint.rstrip('/') + path, **kwargs).json()
        return sess.get(path, endpoint_filter=endpoint_filter,
                        **kwargs).json()
    return compute_get


def placement_getter(sess, conf, endpoint_filter, version=PLACEMENT_VERSION):
    def placement_get(path):
        kwargs = {'headers': {
            'OpenStack-API-Version': 'placement %s' % version}}
        if conf.capacity.placement_endpoint:
            return sess.get(conf.capacity.placement_endpoint.rstrip('/')
                            + path, **kwargs).json()
        return sess.get(path, endpoint_filter=endpoint_filter,
                        **kwargs).json()
    return placement_get


def session_getters(conf):
    """(compute_get, placement_get) over the [nova] keystoneauth session."""
    from nova_ha import nova_api
    sess = nova_api.session_from_conf(conf)
    common = {'interface': conf.nova.endpoint_type,
              'region_name': conf.nova.region_name}
    return (compute_getter(sess, endpoint_filter=dict(
        common, service_type='compute'), timeout=conf.nova.api_timeout),
        placement_getter(sess, conf, dict(common,
                                          service_type='placement')))


def from_nova_db(context, levels, default_az=topology.DEFAULT_AZ):
    """The Cloud from nova's databases (inside nova-scheduler).

    Per call: one query for services, compute nodes and aggregates each
    per cell / API database, one instance query per cell (flavors
    included), one request-spec query and one server-group query in the
    API database.
    """
    from nova import context as nova_context
    from nova import objects
    from oslo_serialization import jsonutils

    problems = []
    ctxt = context.elevated()
    aggregates = objects.AggregateList.get_all(ctxt)
    cells = objects.CellMappingList.get_all(ctxt)
    nodes, services, insts = [], {}, []
    for cell in cells:
        if cell.is_cell0():
            continue
        with nova_context.target_cell(ctxt, cell) as cctxt:
            for svc in objects.ServiceList.get_by_binary(cctxt,
                                                         'nova-compute'):
                services[svc.host] = svc
            nodes.extend(objects.ComputeNodeList.get_all(cctxt))
            insts.extend(objects.InstanceList.get_by_filters(
                cctxt, {'deleted': False}, expected_attrs=['flavor']))
    agg_dicts = [{'name': a.name, 'hosts': list(a.hosts or ()),
                  'metadata': dict(a.metadata or {})} for a in aggregates]
    topo = topology.Topology.from_aggregates(agg_dicts, hosts=services,
                                             levels=levels,
                                             default_az=default_az)
    free = {}
    for cn in nodes:
        # As placement counts it: (total - reserved) * ratio - allocated;
        # the compute node's *_used include the reserved amounts.
        mem_r = _reserved('reserved_host_memory_mb')
        disk_r = _reserved_disk()
        cpu_r = _reserved('reserved_host_cpus')
        room = (
            int((cn.vcpus - cpu_r) * cn.cpu_allocation_ratio)
            - cn.vcpus_used,
            int((cn.memory_mb - mem_r) * cn.ram_allocation_ratio)
            - (cn.memory_mb_used - mem_r),
            int((cn.local_gb - disk_r) * cn.disk_allocation_ratio)
            - (cn.local_gb_used - disk_r))
        old = free.get(cn.host)
        free[cn.host] = room if old is None else tuple(
            a + b for a, b in zip(old, room))
    hosts = []
    for name in sorted(set(services) | set(free)):
        svc = services.get(name)
        info = topo.get(name)
        enabled = svc is not None and not svc.disabled and \
            not svc.forced_down
        hosts.append(model.Host(name, free.get(name, (0, 0, 0)),
                                sal=info.sal if info else None,
                                domains=dict(info.domains) if info else {},
                                enabled=enabled))
    groups = objects.InstanceGroupList.get_all(ctxt)
    member_of = {}
    for g in groups:
        for m in g.members or ():
            member_of[m] = {'id': g.uuid, 'policy': g.policy,
                            'rules': dict(g.rules or {})}
    uuids = [i.uuid for i in insts if i.host]
    hints = _request_spec_hints(ctxt, uuids, jsonutils)
    instances = []
    for i in insts:
        if not i.host:
            continue
        fl = i.flavor
        flavor = {'vcpus': fl.vcpus, 'ram': fl.memory_mb,
                  'disk': fl.root_gb, 'ephemeral': fl.ephemeral_gb,
                  'swap': fl.swap, 'extra_specs': dict(fl.extra_specs or {})}
        g = member_of.get(i.uuid)
        instances.append(instance_of(
            i.uuid, i.display_name or i.uuid, i.host, flavor,
            hints.get(i.uuid) or {}, g['id'] if g else None, levels,
            problems, boot_from_volume=not i.image_ref,
            group_rule_list=group_rules(g) if g else ()))
    aggs = {a['name']: set(a['hosts']) for a in agg_dicts}
    return model.Cloud(hosts, instances, levels, aggs, problems)


def _reserved(name):
    from nova import conf as nova_conf
    return getattr(nova_conf.CONF, name, 0) or 0


def _reserved_disk():
    mb = _reserved('reserved_host_disk_mb')
    return int(math.ceil(mb / 1024.0))


def _request_spec_hints(ctxt, uuids, jsonutils):
    """{instance uuid: scheduler hints} in one API-database query."""
    if not uuids:
        return {}
    from nova.db.api import api as api_db
    from nova.db.api import models as api_models
    out = {}

    @api_db.context_manager.reader
    def read(context):
        return context.session.query(
            api_models.RequestSpec.instance_uuid,
            api_models.RequestSpec.spec).filter(
                api_models.RequestSpec.instance_uuid.in_(uuids)).all()

    for uuid, spec in read(ctxt):
        try:
            data = jsonutils.loads(spec).get('nova_object.data', {})
            out[uuid] = data.get('scheduler_hints') or {}
        except ValueError:
            continue
    return out
