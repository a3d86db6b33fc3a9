"""The fencing driver interface, outcomes and errors.

A fencing driver does three things to one compute host's power, and nothing
else: read the power state, power off (hard, no OS shutdown), power on. The
policy -- retries, back-off, polling until the power *reads* off, timeouts --
lives once in :mod:`nova_ha.fencing.fencer`, never in a driver.

Drivers report failures by raising one of three exceptions, which is how
``fence()`` decides the outcome:

* :class:`BMCAuthError` -- the BMC answered and refused the credentials.
  Retrying cannot help, so ``fence()`` returns FAILED at once.
* :class:`BMCUnreachable` -- no answer within the timeout (dead BMC, wrong
  address, network partition). Retried; UNREACHABLE if it never answers.
* :class:`BMCError` -- the BMC answered but the operation failed (refused,
  not supported, garbled answer). Retried; FAILED if it persists.
* :class:`BMCConfigError` -- the BMC cannot be used as configured (TLS
  certificate not trusted...). FAILED at once, like wrong credentials.

Messages carry the BMC's reason but never a secret: drivers build them from
the host name, address and the BMC's answer only, and run text they did not
write (a tool's stderr, an HTTP body) through :func:`redact`.
"""

import abc
import enum

POWER_ON = 'on'
POWER_OFF = 'off'
POWER_STATES = (POWER_ON, POWER_OFF)

# Driver capabilities (``FenceDriver.capabilities``).
#: can read the power state -- required, fence() confirms with it
CAP_POWER_STATE = 'power-state'
#: can power off -- required
CAP_POWER_OFF = 'power-off'
#: can power on (``nova-ha fence on``; unfencing after repair)
CAP_POWER_ON = 'power-on'
#: "off" is a hard power-off (no guest OS shutdown that could hang)
CAP_HARD_OFF = 'hard-off'
#: the off command may return before the power is off: confirm by polling
CAP_ASYNC_OFF = 'async-off'
#: speaks TLS and verifies the peer's certificate unless told not to
CAP_TLS_VERIFY = 'tls-verify'
#: goes through a management service (Ironic) rather than the BMC itself
CAP_INDIRECT = 'indirect'


class Outcome(str, enum.Enum):
    """The only three answers ``fence()`` gives."""

    #: power was read as off after the off command (or an operator
    #: confirmed it by hand, see :func:`nova_ha.fencing.fencer.confirm`)
    FENCED = 'FENCED'
    #: the BMC answered, but power could not be confirmed off
    FAILED = 'FAILED'
    #: the BMC did not answer within the configured timeout
    UNREACHABLE = 'UNREACHABLE'

    def __str__(self):
        return self.value


class FencingError(Exception):
    """Base of the driver errors. ``str()`` is safe to log."""

    outcome = Outcome.FAILED
    retryable = True

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class BMCAuthError(FencingError):
    """The BMC refused the credentials (not retried)."""

    retryable = False


class BMCConfigError(FencingError):
    """The BMC cannot be used as configured: TLS verification failed,
    unsupported cipher suite... (not retried)."""

    retryable = False


class BMCUnreachable(FencingError):
    """The BMC did not answer in time."""

    outcome = Outcome.UNREACHABLE


class BMCError(FencingError):
    """The BMC answered but the operation failed."""


class PowerActionFailed(BMCError):
    """The BMC (or Ironic) reports that the power-off it had accepted has
    failed: stop waiting for this attempt (a retry may follow)."""


class InventoryError(ValueError):
    """The fencing inventory is unusable. Names the host and the field."""

    def __init__(self, message, host=None, field=None):
        super().__init__(message)
        self.host = host
        self.field = field


class HostNotFound(InventoryError, LookupError):
    """No inventory entry for a compute host."""


class AmbiguousHost(InventoryError, LookupError):
    """A host name matches several inventory entries."""


def redact(text, *secrets):
    """Replace every occurrence of each secret in ``text`` with ``***``."""
    text = '' if text is None else str(text)
    for secret in secrets:
        if secret:
            text = text.replace(str(secret), '***')
    return text


class FenceDriver(abc.ABC):
    """One compute host's power control.

    Instances are made per inventory entry
    (``driver_class(entry, params, inventory)``)
    and may keep a connection open between calls; ``close()`` drops it.
    Every method takes ``timeout``: the most it may block, in seconds. It
    must return or raise within about that long -- a BMC that does not
    answer is :class:`BMCUnreachable`, never a hang.
    """

    #: entry-point name in ``nova_ha.fencing_drivers``
    name = None
    #: frozenset of ``CAP_*``
    capabilities = frozenset()
    #: inventory keys this driver reads besides the common ones
    fields = frozenset()
    #: False if address/port/username/password are not the driver's
    #: (inventory ``defaults`` for them are then not applied)
    uses_bmc_credentials = True

    @classmethod
    def validate(cls, entry):
        """Check an inventory entry at load time; raise InventoryError."""

    @classmethod
    def check_environment(cls, params, entries):
        """Check what the driver needs outside the inventory (a binary, a
        library) for ``entries``; raise InventoryError naming a host."""

    def __init__(self, entry, params, inventory=None):
        self.entry = entry
        self.params = params
        self.inventory = inventory

    @abc.abstractmethod
    def get_power_state(self, timeout):
        """Return ``POWER_ON`` or ``POWER_OFF`` as the BMC reports it."""

    @abc.abstractmethod
    def power_off(self, timeout):
        """Ask for a hard power-off. May return before power is off."""

    def power_on(self, timeout):
        raise BMCError('%s driver cannot power on' % self.name)

    def close(self):
        """Release any connection (idempotent)."""

    def secrets(self):
        """Secret strings this driver uses (to redact from messages)."""
        return self.entry.secrets()

    def __repr__(self):
        return '<%s host=%s address=%s>' % (
            type(self).__name__, self.entry.host, self.entry.address)
