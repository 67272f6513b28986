"""Suite-wide settings, applied before any test module imports a handler."""

import os

# Handlers share one Metrics object (aftercare.observability), built at first import: the
# template sets this variable for every function, so the whole suite does too, whatever order
# the modules import in.
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Aftercare")
