"""Lay out a fault-domain topology on compute hosts with host aggregates.

nova-ha reads its topology from host aggregate metadata ``ha:<level>=<domain>``
(``ha:rack=r1``, ``ha:power_domain=pdu1``), SAL certification from
``ha:sal=N``, and availability zones from nova's own aggregate AZs. This
module writes that layout through the Nova API; the simulated cloud and the
functional tests use it, and an operator can read it as an example.
"""


def _blocks(hosts, count):
    """Split hosts into `count` contiguous, near-equal blocks."""
    if count < 1:
        raise ValueError('count must be >= 1, got %r' % count)
    if count > len(hosts):
        raise ValueError('cannot split %d hosts into %d domains'
                         % (len(hosts), count))
    size, extra = divmod(len(hosts), count)
    out, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        out.append(hosts[start:end])
        start = end
    return out


def create_aggregate(api, name, hosts, metadata=None, availability_zone=None):
    """Create an aggregate holding `hosts`, with optional metadata and AZ."""
    body = {'name': name}
    if availability_zone:
        body['availability_zone'] = availability_zone
    agg = api.post_aggregate({'aggregate': body})
    for host in hosts:
        api.add_host_to_aggregate(agg['id'], host)
    if metadata:
        api.post_aggregate_action(
            agg['id'], {'set_metadata': {'metadata': dict(metadata)}})
    return agg


def layout(api, hosts, racks=1, power_domains=None, azs=None, sal=None):
    """Group `hosts` into racks, power domains and AZs.

    :param api: a nova functional-test API client with admin rights
    :param hosts: compute host names, in rack order
    :param racks: number of racks; hosts are split into contiguous blocks
    :param power_domains: number of power domains (default: one per rack);
        each power domain is a contiguous block of racks
    :param azs: number of availability zones (default: none, nova's default
        AZ); each AZ is a contiguous block of power domains
    :param sal: {host: N} SAL certification per host (``ha:sal=N``); hosts
        not named are not certified
    :returns: {host: {'rack': .., 'power_domain': .., 'availability_zone':
        .., 'sal': ..}}
    """
    hosts = list(hosts)
    rack_blocks = _blocks(hosts, racks)
    pd_count = power_domains or racks
    pd_of_rack = {}
    for p, block in enumerate(_blocks(list(range(racks)), pd_count), 1):
        for r in block:
            pd_of_rack[r] = 'pdu%d' % p
    az_of_pd = {}
    if azs:
        pds = sorted(set(pd_of_rack.values()), key=lambda s: int(s[3:]))
        for a, block in enumerate(_blocks(pds, azs), 1):
            for pd in block:
                az_of_pd[pd] = 'az%d' % a

    result = {h: {} for h in hosts}
    for r, block in enumerate(rack_blocks):
        rack = 'r%d' % (r + 1)
        create_aggregate(api, 'rack-%s' % rack, block, {'ha:rack': rack})
        for h in block:
            result[h]['rack'] = rack
            result[h]['power_domain'] = pd_of_rack[r]
    for pd in sorted(set(pd_of_rack.values())):
        members = [h for h in hosts if result[h]['power_domain'] == pd]
        create_aggregate(api, 'power-%s' % pd, members,
                         {'ha:power_domain': pd})
    for az in sorted(set(az_of_pd.values())):
        members = [h for h in hosts
                   if az_of_pd.get(result[h]['power_domain']) == az]
        create_aggregate(api, 'zone-%s' % az, members, availability_zone=az)
        for h in members:
            result[h]['availability_zone'] = az
    by_level = {}
    for host, level in (sal or {}).items():
        if host not in result:
            raise ValueError('sal names unknown host %r' % host)
        if level not in (1, 2, 3):
            raise ValueError('sal for %r must be 1, 2 or 3, got %r'
                             % (host, level))
        by_level.setdefault(level, []).append(host)
        result[host]['sal'] = level
    for level, members in sorted(by_level.items()):
        create_aggregate(api, 'sal%d' % level, members,
                         {'ha:sal': str(level)})
    return result
