"""Aftercare's shared code (the Lambda layer): domain, models, adapters, API and observability.

Importing it installs `aftercare.lean_imports.DeferredReexports`, which only acts when one of
Powertools' re-export packages is imported (so that a function loads the parts it uses).
"""

from aftercare.lean_imports import defer_reexports

defer_reexports()
