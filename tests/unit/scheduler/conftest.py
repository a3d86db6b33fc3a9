"""Helpers for the scheduler unit tests: HostStates, RequestSpecs, look-up."""

import logging

import pytest
from nova import objects
from nova.tests.unit.scheduler import fakes
from oslo_utils import uuidutils

import nova.conf  # noqa: F401 -- registers nova's options (default AZ)
from nova_ha.scheduler import lookup
from nova_ha.scheduler import request

objects.register_all()

_agg_ids = iter(range(1, 10 ** 9))


def agg(name, hosts=(), **metadata):
    """An aggregate; metadata keys may use __ for ':' (ha__rack='r1')."""
    md = {k.replace('__', ':'): v for k, v in metadata.items()}
    return objects.Aggregate(id=next(_agg_ids), name=name, hosts=list(hosts),
                             metadata=md)


def host_state(name, aggregates=(), instances=()):
    return fakes.FakeHostState(
        name, name, {'aggregates': list(aggregates)},
        instances=[objects.Instance(uuid=u) for u in instances])


def rack_hosts(racks=4, per_rack=2, extra_md=None):
    """Hosts h1..hN in racks r1..rR (aggregates ha:rack), as HostStates."""
    states = []
    n = 0
    for r in range(1, racks + 1):
        names = ['h%d' % (n + i + 1) for i in range(per_rack)]
        n += per_rack
        a = agg('rack-r%d' % r, names, **{'ha__rack': 'r%d' % r,
                                          **(extra_md or {})})
        states += [host_state(h, [a]) for h in names]
    return states


def spec(hints=None, members=(), group_hosts=(), instance_uuid=None,
         extra_specs=None, policy='anti-affinity', group=True):
    hints = {k: [str(v)] for k, v in (hints or {}).items()}
    kwargs = dict(instance_uuid=instance_uuid or uuidutils.generate_uuid(),
                  scheduler_hints=hints,
                  flavor=objects.Flavor(extra_specs=dict(extra_specs or {})))
    if group:
        kwargs['instance_group'] = objects.InstanceGroup(
            uuid=uuidutils.generate_uuid(), policy=policy,
            members=list(members), hosts=list(group_hosts), rules={})
    else:
        kwargs['instance_group'] = None
    return objects.RequestSpec(**kwargs)


def names(hosts):
    return sorted(h.host for h in hosts)


@pytest.fixture
def db():
    """An in-memory look-up in place of nova's databases."""
    fake = lookup.MemoryLookup()
    old = request.set_lookup(fake)
    yield fake
    request.set_lookup(old)


@pytest.fixture
def errors(caplog):
    caplog.set_level(logging.DEBUG, logger='nova_ha')

    def get(level=logging.ERROR):
        return [r.getMessage() for r in caplog.records
                if r.levelno == level and r.name.startswith('nova_ha')]
    return get
