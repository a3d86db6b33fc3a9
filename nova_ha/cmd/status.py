"""``nova-ha-status upgrade check``: is the cloud's nova-ha data consistent?

Reads the Nova API (credentials: the ``[nova]`` group of nova-ha.conf, see
nova_ha/conf/nova.py) and reports, each with a message naming what to fix:

- hosts in two domains of one topology level (FAILURE: hard anti-affinity
  refuses them), bad ``ha:`` aggregate values and topology levels that do
  not nest (WARNING);
- ``ha:`` keys nova-ha does not know, on aggregates or flavors (WARNING),
  and ``ha:`` flavor extra specs with a bad value (FAILURE: the scheduler
  rejects every host for them);
- flavors with ``ha:sal=N`` that no compute host is certified for
  (FAILURE: they cannot boot).

Exit code (oslo.upgradecheck): 0 success, 1 warning, 2 failure, 255 error.

    nova-ha-status --config-file /etc/nova-ha/nova-ha.conf upgrade check
"""

import os
import sys

from oslo_config import cfg
from oslo_upgradecheck import upgradecheck

from nova_ha import topology

DEFAULT_CONFIG = '/etc/nova-ha/nova-ha.conf'
SUCCESS = upgradecheck.Code.SUCCESS
WARNING = upgradecheck.Code.WARNING
FAILURE = upgradecheck.Code.FAILURE


class NovaView:
    """What the checks read from Nova, loaded once.

    :param aggregates: [{'name', 'hosts', 'metadata', 'availability_zone'}]
    :param compute_hosts: host names of the nova-compute services
    :param flavors: [{'id', 'name', 'extra_specs'}]
    """

    def __init__(self, aggregates, compute_hosts, flavors):
        self.aggregates = list(aggregates)
        self.compute_hosts = sorted(set(compute_hosts))
        self.flavors = list(flavors)

    @classmethod
    def from_novaclient(cls, nova):
        aggregates = [{'id': a.id, 'name': a.name, 'hosts': list(a.hosts),
                       'metadata': dict(a.metadata or {}),
                       'availability_zone': a.availability_zone}
                      for a in nova.aggregates.list()]
        hosts = [s.host for s in nova.services.list(binary='nova-compute')]
        flavors = []
        for f in nova.flavors.list(is_public=None):
            specs = getattr(f, 'extra_specs', None)
            if specs is None:          # microversion < 2.61
                specs = f.get_keys()
            flavors.append({'id': f.id, 'name': f.name,
                            'extra_specs': dict(specs or {})})
        return cls(aggregates, hosts, flavors)


def _novaclient_view(conf):
    from nova_ha import nova_api
    return NovaView.from_novaclient(nova_api.client(conf=conf))


def _flavor_label(flavor):
    return 'flavor %s (%s)' % (flavor['name'], flavor['id'])


class Checks(upgradecheck.UpgradeCommands):
    """nova-ha's upgrade checks.

    :param view_factory: callable returning a :class:`NovaView` (called
        once, on the first check)
    :param levels: topology levels (default ``[topology] levels``)
    """

    def __init__(self, view_factory, levels=None):
        super().__init__()
        self._view_factory = view_factory
        self._levels = levels
        self._view = None
        self._error = None

    def _data(self):
        if self._view is None and self._error is None:
            try:
                self._view = self._view_factory()
            except Exception as exc:
                self._error = ('cannot read the Nova API (check [nova] in '
                               'nova-ha.conf): %s: %s'
                               % (type(exc).__name__, exc))
        if self._error:
            return None, None, upgradecheck.Result(FAILURE, self._error)
        try:
            levels = (topology.configured_levels() if self._levels is None
                      else topology.validate_levels(self._levels))
        except (topology.TopologyError, cfg.Error, ValueError) as exc:
            return None, None, upgradecheck.Result(
                FAILURE, 'bad [topology] levels: %s' % exc)
        topo = topology.Topology.from_aggregates(
            self._view.aggregates, hosts=self._view.compute_hosts,
            levels=levels)
        return self._view, topo, None

    def _check_topology(self):
        view, topo, error = self._data()
        if error:
            return error
        failures = [str(c) for c in topo.conflicts]
        warnings = list(topo.problems) + topo.nesting_violations()
        if failures:
            return upgradecheck.Result(
                FAILURE, 'Hosts in two domains of one level (remove the host '
                'from one of the aggregates):\n  ' + '\n  '.join(
                    failures + warnings))
        if warnings:
            return upgradecheck.Result(
                WARNING, 'Topology warnings:\n  ' + '\n  '.join(warnings))
        return upgradecheck.Result(SUCCESS)

    def _check_ha_keys(self):
        view, topo, error = self._data()
        if error:
            return error
        from nova_ha.scheduler import extra_specs
        validators = {v.name: v for v in extra_specs.EXTRA_SPEC_VALIDATORS}
        failures, warnings = [], []
        # HA:SAL, Ha:rack...: nova-ha reads lower-case keys only, so such a
        # key is silently ignored (a flavor's SAL, a host's rack).
        for agg in view.aggregates:
            for key, value in sorted((agg.get('metadata') or {}).items()):
                meant = extra_specs.case_mistake(key)
                if meant:
                    failures.append(
                        'aggregate %s: key %s=%s is ignored: nova-ha keys are '
                        'lower case (%s)' % (agg.get('name'), key, value,
                                             meant))
        for flavor in view.flavors:
            for key, value in sorted(flavor['extra_specs'].items()):
                meant = extra_specs.case_mistake(key)
                if meant:
                    failures.append(
                        '%s: extra spec %s=%s is ignored: nova-ha keys are '
                        'lower case (%s)' % (_flavor_label(flavor), key,
                                             value, meant))
        for agg, key in topo.unknown_keys():
            warnings.append('aggregate %s: unknown key %s (known: %s)' % (
                agg, key, ', '.join(sorted(
                    topology.known_aggregate_keys(topo.levels)))))
        for flavor in view.flavors:
            for key, value in sorted(flavor['extra_specs'].items()):
                if not key.startswith(topology.PREFIX):
                    continue
                validator = validators.get(key)
                if validator is None:
                    warnings.append('%s: unknown extra spec %s (known: %s)'
                                    % (_flavor_label(flavor), key,
                                       ', '.join(sorted(validators))))
                    continue
                try:
                    validator.validate(key, value)
                except Exception as exc:
                    failures.append('%s: %s' % (
                        _flavor_label(flavor),
                        str(exc).replace('Validation failed; ', '')))
        if failures:
            return upgradecheck.Result(
                FAILURE, 'Bad ha: keys or values (the scheduler refuses '
                'every host for these flavors, or ignores the key):\n  ' + '\n  '.join(failures + warnings))
        if warnings:
            return upgradecheck.Result(
                WARNING, 'Unknown ha: keys (typos?):\n  ' +
                '\n  '.join(warnings))
        return upgradecheck.Result(SUCCESS)

    def _check_sal_flavors(self):
        view, topo, error = self._data()
        if error:
            return error
        computes = set(view.compute_hosts)
        failures = []
        for flavor in view.flavors:
            value = str(flavor['extra_specs'].get('ha:sal', '')).strip()
            if value not in ('1', '2', '3'):
                continue          # absent, or reported by the key check
            sal = int(value)
            hosts = [h for h in topo.certified_hosts(sal) if h in computes]
            if not hosts:
                failures.append(
                    '%s has ha:sal=%d but no compute host is certified for '
                    'SAL %d (give an aggregate of suitable hosts the '
                    'metadata ha:sal=%d or stricter)'
                    % (_flavor_label(flavor), sal, sal, sal))
        if failures:
            return upgradecheck.Result(FAILURE, '\n'.join(failures))
        return upgradecheck.Result(SUCCESS)

    _upgrade_checks = (
        ('Fault-domain topology', _check_topology),
        ('ha: aggregate keys and flavor extra specs', _check_ha_keys),
        ('SAL flavors have certified hosts', _check_sal_flavors),
    )


def main(argv=None, view_factory=None):
    """Console script ``nova-ha-status``.

    :param view_factory: callable(conf) -> NovaView; default: novaclient
        configured by ``[nova]``
    """
    from nova_ha.conf import nova as nova_conf
    from nova_ha.conf import topology as topology_conf
    conf = cfg.ConfigOpts()
    nova_conf.register_opts(conf)
    topology_conf.register_opts(conf)
    factory = view_factory or _novaclient_view
    checks = Checks(lambda: factory(conf),
                    levels=_LazyLevels(conf))
    defaults = [DEFAULT_CONFIG] if os.path.exists(DEFAULT_CONFIG) else []
    return upgradecheck.main(
        conf, project='nova-ha', upgrade_command=checks,
        argv=sys.argv[1:] if argv is None else argv,
        default_config_files=defaults)


class _LazyLevels:
    """``[topology] levels`` of a ConfigOpts, read when the checks run."""

    def __init__(self, conf):
        self._conf = conf

    def __iter__(self):
        return iter(self._conf.topology.levels)


if __name__ == '__main__':
    sys.exit(main())
