"""Aftercare's shared code (the Lambda layer): domain, models, adapters, API and observability.

Importing it installs `aftercare.lean_imports.DeferredReexports`, which only acts when one of
Powertools' re-export packages is imported (so that a function loads the parts it uses), and
`aftercare.deferred_imports.DeferredImports`, which only acts when Powertools' batch module or
pydantic's plugin loader is imported (so that asyncio and importlib.metadata wait for a use).
"""

from aftercare.deferred_imports import defer_imports
from aftercare.lean_imports import defer_reexports

defer_reexports()
defer_imports()
