"""An instance's migration policy: the one parser of its keys.

Read by the scheduler's MigrationPolicyFilter and API hint check
(:mod:`nova_ha.scheduler.request`, inside nova-scheduler and nova-api) and
by the maintenance drain (:mod:`nova_ha.maintenance.policy`, which runs
without nova installed), so this module imports neither nova nor anything
heavy.

Where the keys are set:

* flavor extra specs (the operator): ``ha:live_migration=allowed|
  forbidden``, ``ha:max_interruption_ms=N`` (N >= 0);
* scheduler hints (a VNF manager, at boot; the scheduler sees them, the
  Nova API never returns them): ``ha_live_migration=allowed|forbidden``,
  ``ha_max_interruption_ms=N`` (N >= 0), ``ha_max_concurrent_moves=N``
  (N >= 0);
* instance metadata (a VNF manager, at any time; what the drain reads):
  the same three keys, plus ``ha_cold_migration=allowed|forbidden`` and
  ``ha_pinned=true|false``.

Rules:

* a flavor spec and a hint or metadata key on the same subject combine to
  the stricter of the two (a VNF manager can only tighten what the
  operator's flavor says); on equal interruption limits the flavor is
  named;
* values are taken with surrounding blanks stripped and otherwise as
  written: ``allowed``/``forbidden`` in lower case, integers in plain
  decimal (no sign, no leading zero), ``ha_pinned`` one of
  ``true yes 1 on`` / ``false no 0 off`` (any case);
* a malformed value raises :class:`BadValue`, whose message names where
  the key was set, the key and the value: nothing is guessed.
"""

import dataclasses

SPEC_LIVE = 'ha:live_migration'
SPEC_MAX_INTERRUPTION = 'ha:max_interruption_ms'
KEY_LIVE = 'ha_live_migration'
KEY_COLD = 'ha_cold_migration'
KEY_MAX_INTERRUPTION = 'ha_max_interruption_ms'
KEY_MAX_MOVES = 'ha_max_concurrent_moves'
KEY_PINNED = 'ha_pinned'

ALLOWED, FORBIDDEN = 'allowed', 'forbidden'

#: Where a key was set: the first word of every message about it.
FLAVOR = 'flavor extra spec'
HINT = 'hint'
METADATA = 'metadata'

#: The keys each source may carry. Hints have no cold-migration or pinning
#: key (nova ignores unknown hints, so none is checked either).
KEYS = {
    HINT: (KEY_LIVE, KEY_MAX_INTERRUPTION, KEY_MAX_MOVES),
    METADATA: (KEY_LIVE, KEY_COLD, KEY_MAX_INTERRUPTION, KEY_MAX_MOVES,
               KEY_PINNED),
}

_TRUE = ('true', 'yes', '1', 'on')
_FALSE = ('false', 'no', '0', 'off')


class BadValue(ValueError):
    """A hint, extra spec or metadata value that cannot be used.

    The message is ``<kind> <key>=<value repr> is invalid: <expected>``.
    """

    def __init__(self, kind, key, value, expected):
        self.kind, self.key, self.value = kind, key, value
        self.name = key          # the scheduler's spelling
        self.expected = expected
        super().__init__('%s %s=%r is invalid: %s' % (kind, key, value,
                                                      expected))


def single(values, key, kind=HINT):
    """The value of ``key`` as a stripped string, or None.

    A key given twice (nova keeps a repeated hint as a list) is refused.
    """
    value = values.get(key)
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise BadValue(kind, key, value, 'give it once')
        value = value[0]
    return str(value).strip()


def choice(kind, key, value, choices):
    """``value`` if it is one of ``choices``, else BadValue."""
    if value not in choices:
        raise BadValue(kind, key, value, 'must be one of %s'
                       % ', '.join(choices))
    return value


def integer(kind, key, value, minimum):
    """``value`` as an int >= ``minimum`` (plain decimal), else BadValue."""
    try:
        parsed = int(value)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None or parsed < minimum or str(value).strip() != str(
            parsed):
        raise BadValue(kind, key, value, 'must be an integer >= %d'
                       % minimum)
    return parsed


def boolean(kind, key, value):
    v = str(value).strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise BadValue(kind, key, value, 'must be true or false')


@dataclasses.dataclass(frozen=True)
class Policy:
    """One instance's migration policy; each ``*_by`` says where a limit
    comes from (e.g. ``flavor extra spec ha:live_migration=forbidden``)."""

    live_forbidden_by: str = None
    cold_forbidden_by: str = None
    pinned_by: str = None
    max_interruption_ms: int = None
    max_interruption_by: str = None
    max_moves: int = None
    max_moves_by: str = None

    @property
    def empty(self):
        """True when nothing restricts a move."""
        return self == Policy()


def parse(specs, values, kind):
    """The :class:`Policy` of flavor extra ``specs`` and ``values`` (hints
    or metadata, as ``kind`` says: :data:`HINT` or :data:`METADATA`).

    Raises BadValue naming the first malformed key.
    """
    specs = specs or {}
    values = values or {}
    keys = KEYS[kind]
    p = {}
    live = specs.get(SPEC_LIVE)
    if live is not None:
        live = choice(FLAVOR, SPEC_LIVE, str(live).strip(),
                      (ALLOWED, FORBIDDEN))
        if live == FORBIDDEN:
            p['live_forbidden_by'] = '%s %s=%s' % (FLAVOR, SPEC_LIVE, live)
    live = single(values, KEY_LIVE, kind)
    if live is not None:
        choice(kind, KEY_LIVE, live, (ALLOWED, FORBIDDEN))
        if live == FORBIDDEN:
            p.setdefault('live_forbidden_by',
                         '%s %s=%s' % (kind, KEY_LIVE, live))
    cold = single(values, KEY_COLD, kind) if KEY_COLD in keys else None
    if cold is not None:
        choice(kind, KEY_COLD, cold, (ALLOWED, FORBIDDEN))
        if cold == FORBIDDEN:
            p['cold_forbidden_by'] = '%s %s=%s' % (kind, KEY_COLD, cold)
    pinned = single(values, KEY_PINNED, kind) if KEY_PINNED in keys else None
    if pinned is not None and boolean(kind, KEY_PINNED, pinned):
        p['pinned_by'] = '%s %s=%s' % (kind, KEY_PINNED, pinned)
    hint_ms = single(values, KEY_MAX_INTERRUPTION, kind)
    for where, key, value in (
            (FLAVOR, SPEC_MAX_INTERRUPTION, specs.get(SPEC_MAX_INTERRUPTION)),
            (kind, KEY_MAX_INTERRUPTION, hint_ms)):
        if value is None:
            continue
        ms = integer(where, key, str(value).strip(), 0)
        if 'max_interruption_ms' not in p or ms < p['max_interruption_ms']:
            p['max_interruption_ms'] = ms
            p['max_interruption_by'] = '%s %s=%d' % (where, key, ms)
    moves = single(values, KEY_MAX_MOVES, kind)
    if moves is not None:
        p['max_moves'] = integer(kind, KEY_MAX_MOVES, moves, 0)
        p['max_moves_by'] = '%s %s=%d' % (kind, KEY_MAX_MOVES, p['max_moves'])
    return Policy(**p)
