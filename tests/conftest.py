"""Loaded by pytest before any test module, in every tier.

nova's test packages (``nova.tests.functional`` and others) call
``nova.monkey_patch.patch()`` on import, which defaults to eventlet and
must run before eventlet or anything using it (oslo.privsep's daemon
imports it if it can) is imported. Choosing nova-compute 34's default,
native threads, here once and first keeps the order right whichever
test modules a run collects, and keeps eventlet's patching out of the
engine's subprocess and lock calls.
"""

import os

os.environ["OS_NOVA_DISABLE_EVENTLET_PATCHING"] = "1"

from nova import monkey_patch  # noqa: E402

monkey_patch.patch(backend="threading")
