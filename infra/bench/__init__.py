"""`make bench` and `make cost`: the local stack under open-loop fault load, and the AWS bill.

Every figure is measured in one run against a reference measured in the same run (see
`infra.bench.run`); `infra.bench.cost` turns the measured capacity units and request counts into
an itemised AWS cost from the list prices in `bench/prices.json`.
"""
