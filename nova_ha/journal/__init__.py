"""nova-ha's journal: the SQL store of the evacuator and maintenance loops.

See :mod:`nova_ha.journal.api` for the API and doc/journal.md for the
schema. The usual imports::

    from nova_ha import journal
    journal.upgrade(url)
    j = journal.Journal(url)
"""

from nova_ha.journal.api import *  # noqa: F401,F403
from nova_ha.journal.api import __all__ as _api_all
from nova_ha.journal.migrations import current  # noqa: F401
from nova_ha.journal.migrations import head  # noqa: F401
from nova_ha.journal.migrations import upgrade  # noqa: F401

__all__ = list(_api_all) + ['upgrade', 'current', 'head']
