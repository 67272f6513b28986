"""On PYTHONPATH only in the benchmark's stack: records DynamoDB requests (infra.bench.capture)."""

import os

if os.environ.get("AFTERCARE_BENCH_CAPTURE"):
    from infra.bench.capture import install

    install()
