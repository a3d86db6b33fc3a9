"""nova-ha's console scripts.

Imported before any of them: oslo.service and futurist still import
eventlet, which prints a 9-line deprecation warning on import; nova-ha runs
on native threads, and an operator must see the one line that matters
(a refused option, a failed command), not that.
"""

import warnings

warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')
