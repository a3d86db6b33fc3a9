"""The mass-failure guard: may the evacuator fence now, and if not, why.

Pure decision logic over named structures (no journal, no receiver, no
clock): the engine gathers one ``GuardHost`` per compute host each pass
and asks ``judge()``. The rules (doc/evacuator.md, "Mass-failure guard"):

============================  ==============================================
rule                          holds fencing back when
============================  ==============================================
burst                         some host is silent but still inside its
                              confirmation window: the decision waits until
                              every window of the burst has ended (WAIT, no
                              alarm)
cloud-wide                    failing hosts >= max_failed_fraction of all
                              hosts (exactly 50 % is guarded by default)
per domain                    the same per rack / power domain /
                              availability zone with >= domain_min_hosts
                              hosts (max_failed_fraction_per_domain)
per network plane             hosts silent on one plane >=
                              max_failed_fraction of all hosts: this
                              evacuator more likely lost that plane
small cloud                   a cloud of <= small_cloud_hosts hosts would
                              lose more than small_cloud_max_fenced hosts
                              to fencing within failure_window
failures in window            more than max_failures_in_window distinct
                              hosts failing within failure_window
============================  ==============================================

"Failing" counts every host that is silent (past or inside its window),
has an open recovery, or was fenced within ``failure_window`` and has not
been returned to service by an operator since.
"""

import collections
import dataclasses
import typing

# Topology levels the guard counts per domain.
LEVELS = ('rack', 'power_domain', 'availability_zone')

# GuardHost.silence
HEARD = 'heard'          # within half its window on every plane
SUSPECT = 'suspect'      # silent on every plane, still inside its window
SILENT = 'silent'        # silent on every plane past its window

# A host whose every plane is silent for more than this share of its
# window is SUSPECT for the guard (a burst being judged together).
SUSPECT_FRACTION = 0.5


@dataclasses.dataclass(frozen=True)
class GuardPolicy:
    """The [guard] options the rules read (see nova_ha/conf/guard.py)."""
    max_failed_fraction: float = 0.5
    max_failed_fraction_per_domain: float = 0.5
    domain_min_hosts: int = 3
    max_failures_in_window: int = 10
    failure_window: float = 60.0
    small_cloud_hosts: int = 10
    small_cloud_max_fenced: int = 1

    @classmethod
    def from_conf(cls, group):
        return cls(**{f.name: getattr(group, f.name)
                      for f in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class GuardHost:
    """What the guard knows of one compute host this pass."""
    name: str
    silence: str = HEARD                 # HEARD / SUSPECT / SILENT
    silent_planes: tuple = ()            # planes silent past half a window
    open_recovery: bool = False          # a recovery is open (not closed)
    fenced_recently: bool = False        # fenced within failure_window, not
    #                                      returned to service since
    domains: typing.Mapping = dataclasses.field(default_factory=dict)

    @property
    def failing(self):
        return (self.silence != HEARD or self.open_recovery
                or self.fenced_recently)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """``wait``: decide later (a burst is still unfolding), no alarm.
    ``reason``: fencing is held back (alarm, host GUARDED). Neither: go."""
    wait: typing.Optional[str] = None
    reason: typing.Optional[str] = None
    failing: frozenset = frozenset()
    rule: typing.Optional[str] = None

    @property
    def go(self):
        return self.wait is None and self.reason is None


def _pct(n, total):
    return 100.0 * n / total if total else 0.0


def _reaches(count, total, fraction):
    """True if ``count`` of ``total`` is ``fraction`` or more (exactly the
    fraction is guarded). A fraction of 1.0 guards only when all fail;
    0 < count is needed in every case."""
    return count > 0 and count >= fraction * total - 1e-9


def judge(policy, hosts, planes=()):
    """The verdict for this pass. ``hosts``: every monitored compute host
    (GuardHost); ``planes``: the heartbeat planes."""
    hosts = list(hosts)
    total = len(hosts)
    failing = frozenset(h.name for h in hosts if h.failing)
    if not failing:
        return Verdict()
    suspects = sorted(h.name for h in hosts if h.silence == SUSPECT)
    if suspects:
        return Verdict(wait='host(s) %s silent inside their confirmation '
                            'window: judging the burst together once their '
                            'windows end' % ', '.join(suspects),
                       failing=failing, rule='burst')
    for check in (_cloud_wide, _per_domain, _per_plane, _small_cloud,
                  _in_window):
        out = check(policy, hosts, failing, total, planes)
        if out is not None:
            rule, reason = out
            return Verdict(reason=reason, failing=failing, rule=rule)
    return Verdict(failing=failing)


def _cloud_wide(policy, hosts, failing, total, planes):
    if _reaches(len(failing), total, policy.max_failed_fraction):
        return 'cloud-wide', (
            '%d of %d compute hosts (%.0f%%) are failing at once (%s) '
            '(guard: %.0f%% or more)' % (
                len(failing), total, _pct(len(failing), total),
                ', '.join(sorted(failing)),
                100.0 * policy.max_failed_fraction))
    return None


def _per_domain(policy, hosts, failing, total, planes):
    for level in LEVELS:
        members = collections.defaultdict(list)
        for h in hosts:
            dom = h.domains.get(level)
            if dom is not None:
                members[dom].append(h.name)
        for dom, names in sorted(members.items()):
            if len(names) < policy.domain_min_hosts:
                continue
            down = [n for n in names if n in failing]
            if _reaches(len(down), len(names),
                        policy.max_failed_fraction_per_domain):
                return 'domain', (
                    '%d of %d hosts of %s %s are failing at once (%s) '
                    '(guard: %.0f%% or more)' % (
                        len(down), len(names), level, dom,
                        ', '.join(sorted(down)),
                        100.0 * policy.max_failed_fraction_per_domain))
    return None


def _per_plane(policy, hosts, failing, total, planes):
    for plane in planes:
        silent = [h.name for h in hosts if plane in h.silent_planes]
        if _reaches(len(silent), total, policy.max_failed_fraction):
            return 'plane', (
                '%d of %d compute hosts are silent on heartbeat plane %s '
                '(guard: %.0f%% or more): this evacuator more likely lost '
                'that plane' % (len(silent), total, plane,
                                100.0 * policy.max_failed_fraction))
    return None


def _small_cloud(policy, hosts, failing, total, planes):
    if total > policy.small_cloud_hosts:
        return None
    if len(failing) > policy.small_cloud_max_fenced:
        return 'small-cloud', (
            '%d of %d compute hosts failing within %.0f s (%s); a cloud of '
            'at most %d hosts loses at most %d to automatic fencing per '
            'window' % (len(failing), total, policy.failure_window,
                        ', '.join(sorted(failing)), policy.small_cloud_hosts,
                        policy.small_cloud_max_fenced))
    return None


def _in_window(policy, hosts, failing, total, planes):
    if len(failing) > policy.max_failures_in_window:
        return 'window', (
            '%d hosts failing within %.0f s (guard: more than %d)' % (
                len(failing), policy.failure_window,
                policy.max_failures_in_window))
    return None
