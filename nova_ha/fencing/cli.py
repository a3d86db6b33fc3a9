"""``nova-ha fence ...``: operator commands on the fencing inventory.

::

    nova-ha fence check [--no-nova] [--no-bmc]
                              # every compute host has an entry, every
                              # BMC answers to its credentials
    nova-ha fence status HOST                 # read the power state once
    nova-ha fence off HOST                    # fence(): off + confirm off
    nova-ha fence on HOST                     # power on, wait until on
    nova-ha fence confirm HOST --operator NAME [--reason TEXT]
                                              # BMC dead, checked by hand

All read ``[fencing] inventory_file`` (or ``--inventory``) and print the
outcome and how long it took. Exit codes:

* 0 -- done: power read (status), power confirmed off (off: FENCED),
  power on (on), confirmation recorded (confirm), inventory valid (check);
* 1 -- the operation ran and failed (off: FAILED; status/on: BMC error);
* 2 -- bad arguments, configuration or inventory (host not in it...);
* 3 -- the BMC did not answer (off: UNREACHABLE; status/on).
"""

import json
import sys
import time

from nova_ha.fencing import base
from nova_ha.fencing.base import Outcome

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_UNREACHABLE = 3

_EXIT = {Outcome.FENCED: EXIT_OK, Outcome.FAILED: EXIT_FAILED,
         Outcome.UNREACHABLE: EXIT_UNREACHABLE}

EPILOG = ('exit codes: 0 done (off: power confirmed off), 1 failed '
          '(off: FAILED), 2 bad arguments/configuration/inventory, '
          '3 BMC not answering (off: UNREACHABLE)')


def add_parser(subparsers):
    p = subparsers.add_parser(
        'fence', help='power control of compute hosts through their BMCs',
        description='Fence (power off and confirm), read or restore the '
                    'power of a compute host, using the fencing inventory.',
        epilog=EPILOG)
    sub = p.add_subparsers(dest='fence_command', metavar='COMMAND')
    sub.required = True

    def common(sp, host=True):
        sp.add_argument('--inventory', metavar='PATH',
                        help='fencing inventory YAML (default: [fencing] '
                             'inventory_file)')
        sp.add_argument('--json', action='store_true',
                        help='print the result as JSON')
        if host:
            sp.add_argument('host', metavar='HOST',
                            help='compute host name as Nova reports it '
                                 '(FQDN or short name)')

    sp = sub.add_parser('status', help='read the power state once',
                        epilog=EPILOG)
    common(sp)
    sp.set_defaults(func=cmd_status)
    sp = sub.add_parser('off', help='fence: power off and confirm it reads '
                                    'off (retries, timeouts from [fencing])',
                        epilog=EPILOG)
    common(sp)
    sp.set_defaults(func=cmd_off)
    sp = sub.add_parser('on', help='power on and wait until it reads on',
                        epilog=EPILOG)
    common(sp)
    sp.set_defaults(func=cmd_on)
    sp = sub.add_parser(
        'confirm', epilog=EPILOG,
        help='record that HOST is powered off, checked by hand (for a host '
             'whose BMC is dead); counts as FENCED',
        description='Record, with your name and the time, that you checked '
                    'by hand that HOST is powered off. The evacuator then '
                    'treats it as fenced. Only do this after checking: '
                    'evacuating a host that is still running runs every '
                    'instance twice.')
    common(sp)
    sp.add_argument('--operator', required=True, metavar='NAME',
                    help='who checked (recorded)')
    sp.add_argument('--reason', metavar='TEXT', required=True,
                    help='how it was checked, e.g. "PDU outlet 7 off, '
                         'checked on site" (recorded)')
    sp.add_argument('--record-file', metavar='PATH',
                    help='record to this JSON-lines file instead of the '
                         'journal ([journal] connection)')
    sp.set_defaults(func=cmd_confirm)
    sp = sub.add_parser(
        'check', epilog=EPILOG,
        help='check what the evacuator needs: an inventory entry for every '
             'compute host in Nova and a power-state read with each '
             'entry\'s credentials',
        description='Check the fencing inventory as the evacuator will use '
                    'it: every field of every entry; an entry for every '
                    'nova-compute host Nova lists ([nova]); and, for every '
                    'entry, one authenticated power-state read from its '
                    'BMC (nothing is switched). Exit 0 only when all pass; '
                    '2 a host without entry or a bad inventory, 1 a BMC '
                    'refused (wrong credentials...), 3 a BMC not '
                    'answering.')
    common(sp, host=False)
    sp.add_argument('--no-nova', action='store_true',
                    help='do not ask Nova for its compute hosts')
    sp.add_argument('--no-bmc', action='store_true',
                    help='do not read the power state from the BMCs')
    sp.set_defaults(func=cmd_check)
    return p


def _conf():
    from oslo_config import cfg
    from nova_ha.conf import fencing as fencing_conf
    conf = cfg.CONF
    try:
        conf.fencing
    except cfg.NoSuchOptError:
        fencing_conf.register_opts(conf)
    return conf


def _setup(args, lookup=True):
    """(inventory, fencer, entry) or an exit code after printing why."""
    from nova_ha.fencing import fencer as fencer_mod
    from nova_ha.fencing import inventory as inventory_mod
    conf = _conf()
    path = args.inventory or conf.fencing.inventory_file
    try:
        inv = inventory_mod.load(path)
        fencer = fencer_mod.Fencer(inv, fencer_mod.FenceParams.from_conf(conf))
        entry = inv.lookup(args.host) if lookup else None
    except base.InventoryError as exc:
        print('nova-ha fence: %s' % exc, file=sys.stderr)
        return EXIT_CONFIG
    return inv, fencer, entry


def _print(args, data, line):
    if args.json:
        print(json.dumps(data, sort_keys=True, default=str))
    else:
        print(line)


def _nova_compute_hosts():
    """Nova's nova-compute host names (``[nova]``), as the evacuator
    reads them at start-up."""
    from nova_ha import nova_api
    nova = nova_api.client(conf=_conf())
    return sorted({s.host for s in nova.services.list(
        binary='nova-compute')})


def cmd_check(args):
    """What the evacuator needs before it can fence: an entry for every
    compute host Nova knows (``--no-nova``: skip) and, per entry, a power
    state read with the inventory's credentials (``--no-bmc``: skip)."""
    from concurrent import futures
    got = _setup(args, lookup=False)
    if isinstance(got, int):
        return got
    inv, fencer, _ = got
    problems = []      # (exit code, line)
    compute = None
    if not args.no_nova:
        from nova_ha import nova_api
        try:
            compute = _nova_compute_hosts()
        except nova_api.NovaConfigError as exc:
            print('nova-ha fence check: %s (or --no-nova)' % exc,
                  file=sys.stderr)
            return EXIT_CONFIG
        except Exception as exc:   # noqa: BLE001 -- Nova unreachable
            print('nova-ha fence check: cannot list the compute hosts from '
                  'Nova: %s (or --no-nova)' % exc, file=sys.stderr)
            return EXIT_UNREACHABLE
        for host in inv.missing(compute):
            problems.append((EXIT_CONFIG, '%s: no (unambiguous) entry in %s: '
                             'the evacuator refuses to start' % (
                                 host, inv.source)))
    hosts = inv.hosts()
    results = {}
    if not args.no_bmc and hosts:
        # One BMC at a time per address (a BMC serves few sessions; an
        # Ironic or a chassis controller may front several hosts), the
        # BMCs of different addresses in parallel.
        by_bmc = {}
        for host in hosts:
            entry = inv.lookup(host)
            by_bmc.setdefault((entry.driver, entry.address, entry.port),
                              []).append(host)

        def read(group):
            return [(host, fencer.status(host)) for host in group]

        with futures.ThreadPoolExecutor(min(16, len(by_bmc))) as pool:
            for pairs in pool.map(read, by_bmc.values()):
                results.update(pairs)
        fencer.close()
    rows = []
    for host in hosts:
        entry = inv.lookup(host)
        st = results.get(host)
        if st is None:
            state, line = 'not read', '%s: %s (not read: --no-bmc)' % (
                host, entry.driver)
        elif st.power_state:
            state = 'power %s' % st.power_state
            line = '%s: %s, power %s (read in %.3f s)' % (
                host, entry.driver, st.power_state, st.elapsed)
        else:
            state = st.outcome.value
            line = '%s: %s %s in %.3f s: %s' % (
                host, entry.driver, st.outcome.value, st.elapsed, st.reason)
            problems.append((_EXIT[st.outcome], line))
        rows.append({'host': host, 'driver': entry.driver, 'state': state,
                     'reason': None if st is None else st.reason})
        if not args.json:
            print(line)
    code = EXIT_OK
    for candidate in (EXIT_CONFIG, EXIT_FAILED, EXIT_UNREACHABLE):
        if any(c == candidate for c, _ in problems):
            code = candidate
            break
    summary = 'inventory %s: %d host(s), %s; %s' % (
        inv.source, len(inv),
        'compute hosts not checked (--no-nova)' if compute is None else
        '%d compute host(s) in Nova' % len(compute),
        'OK' if not problems else '%d problem(s)' % len(problems))
    if args.json:
        print(json.dumps({'inventory': inv.source, 'hosts': rows,
                          'compute_hosts': compute,
                          'problems': [p for _, p in problems],
                          'result': 'OK' if not problems else 'FAILED'},
                         sort_keys=True))
    else:
        for _, line in problems:
            if line.split(':', 1)[0] not in results:
                print(line)
        print(summary)
    return code


def cmd_status(args):
    got = _setup(args)
    if isinstance(got, int):
        return got
    _, fencer, entry = got
    st = fencer.status(args.host)
    fencer.close()
    if st.power_state:
        line = '%s: power %s (%s %s, read in %.3f s)' % (
            args.host, st.power_state, entry.driver, entry.host, st.elapsed)
        rc = EXIT_OK
    else:
        line = '%s: %s in %.3f s: %s' % (args.host, st.outcome.value,
                                         st.elapsed, st.reason)
        rc = _EXIT[st.outcome]
    _print(args, {'host': args.host, 'power_state': st.power_state,
                  'result': 'OK' if rc == EXIT_OK else st.outcome.value,
                  'reason': st.reason, 'elapsed': round(st.elapsed, 4),
                  'driver': entry.driver}, line)
    return rc


def cmd_off(args):
    got = _setup(args)
    if isinstance(got, int):
        return got
    _, fencer, entry = got
    result = fencer.fence(args.host)
    fencer.close()
    _print(args, result.to_dict(),
           '%s: %s in %.3f s (%s, %d attempt(s)): %s' % (
               args.host, result.outcome.value, result.elapsed,
               result.driver, result.attempts, result.reason))
    return _EXIT[result.outcome]


def cmd_on(args):
    got = _setup(args)
    if isinstance(got, int):
        return got
    _, fencer, entry = got
    st = fencer.power_on(args.host)
    fencer.close()
    ok = st.outcome is Outcome.FENCED
    _print(args, {'host': args.host, 'power_state': st.power_state,
                  'result': 'OK' if ok else st.outcome.value,
                  'reason': st.reason, 'elapsed': round(st.elapsed, 4),
                  'driver': entry.driver},
           '%s: %s in %.3f s: %s' % (args.host, 'power on' if ok
                                     else st.outcome.value, st.elapsed,
                                     st.reason))
    return _EXIT[st.outcome]


def _journal_recorder(conf, host):
    """Records into the journal, tied to the host's open recovery (so
    that ``nova-ha recovery show`` lists the confirmation among its
    fencing attempts)."""
    from nova_ha.fencing import fencer as fencer_mod
    from nova_ha.journal import api as journal_api
    journal = journal_api.Journal.from_conf(conf)
    rec = journal.get_open_recovery(host)
    return fencer_mod.JournalRecorder(
        journal, recovery_id=rec.id if rec is not None else None), rec


def cmd_confirm(args):
    from nova_ha.fencing import fencer as fencer_mod
    start = time.monotonic()
    got = _setup(args)
    if isinstance(got, int):
        return got
    inv, fencer, entry = got
    if not args.operator.strip():
        print('nova-ha fence confirm: --operator: must name who checked',
              file=sys.stderr)
        return EXIT_CONFIG
    try:
        if args.record_file:
            recorder = fencer_mod.FileRecorder(args.record_file)
            where = args.record_file
        else:
            recorder, rec = _journal_recorder(_conf(), args.host)
            where = 'the journal' if rec is None else \
                'the journal, recovery %d' % rec.id
        # The library logs the confirmation as a WARNING (a daemon's log);
        # here the outcome is printed below, once.
        import logging
        quiet = logging.Filter('-')     # matches no logger name: drops all
        log = logging.getLogger(fencer_mod.__name__)
        log.addFilter(quiet)
        try:
            result = fencer_mod.confirm(args.host, args.operator, recorder,
                                        inventory=inv, reason=args.reason)
        finally:
            log.removeFilter(quiet)
    except Exception as exc:  # noqa: BLE001 -- unrecorded: does not count
        print('nova-ha fence confirm: NOT recorded (%s: %s); the host is '
              'not considered fenced' % (type(exc).__name__, exc),
              file=sys.stderr)
        return EXIT_CONFIG
    _print(args, result.to_dict(),
           '%s: FENCED (confirmed by %s, recorded in %s) in %.3f s: %s' % (
               args.host, result.confirmed_by, where,
               time.monotonic() - start, result.reason))
    return EXIT_OK
