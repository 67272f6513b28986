"""The seeded field directory (`data/engineers.yaml`): what the local stack and `admin seed`
write into FieldTable."""

from __future__ import annotations

from collections import Counter

import boto3
from aftercare.adapters.aws import to_item
from aftercare.adapters.dispatch_marks import DynamoCustomerPreferences
from aftercare.domain.calendar import eligible
from moto import mock_aws

from infra.admin.seed import item_kind
from infra.seeding import (
    MODELS,
    REGIONS,
    customer_items,
    demo_customers,
    field_directory,
    field_items,
    region_of,
)
from tests.fakes.diagnostics import make_ticket
from tests.fakes.tables import create_template_tables


def test_twelve_in_house_engineers_span_the_four_regions_and_partners_cover_the_thin_one():
    partners, engineers = field_directory()
    in_house = [e for e in engineers if e.kind == "in_house"]
    assert len(in_house) == 12
    coverage = Counter(r for e in in_house for r in e.regions)
    assert set(coverage) == set(REGIONS)
    thin = min(coverage, key=lambda r: coverage[r])
    assert len(partners) == 2 and all(thin in p.regions for p in partners)
    for partner in partners:
        assert any(e.partner == partner.partner_id for e in engineers)
    assert all(e.partner in {p.partner_id for p in partners} for e in engineers if e.partner)


def test_every_region_has_an_engineer_for_every_model():
    _, engineers = field_directory()
    for region in REGIONS:
        for model in MODELS:
            ticket = make_ticket(model=model).model_copy(update={"region": region})
            assert any(eligible(e, ticket) for e in engineers), (region, model)


def test_seed_items_are_keyed_and_counted_by_kind():
    items = field_items()
    assert len({(i["pk"], i["sk"]) for i in items}) == len(items)
    assert Counter(item_kind(i) for i in items) == {"engineer": 16, "partner": 2}


def test_seeded_vips_prefer_an_in_house_engineer_of_their_region_and_dispatch_reads_it(
    fake_aws_credentials: None,
) -> None:
    # Given the demo customers as the local stack seeds them
    customers = demo_customers()
    _, engineers = field_directory()
    by_id = {e.engineer_id: e for e in engineers}
    vips = [c for c in customers if c.tier == "vip"]
    # Then every VIP (and nobody else) prefers an in-house engineer covering their region
    assert vips and all(c.preferred_engineers for c in vips)
    assert not any(c.preferred_engineers for c in customers if c.tier != "vip")
    for customer in vips:
        (preferred,) = customer.preferred_engineers
        region = region_of(int(customer.customer_id.removeprefix("c-")))
        assert by_id[preferred].kind == "in_house" and region in by_id[preferred].regions
    # When dispatch reads a VIP's record from CustomersTable (one GetItem)
    with mock_aws():
        ddb = boto3.session.Session(region_name="us-east-1").client("dynamodb")
        create_template_tables(ddb, ("CustomersTable",))
        table = "aftercare-customers-test"
        for item in customer_items(customers):
            ddb.put_item(TableName=table, Item=to_item(item))
        reads = DynamoCustomerPreferences(customers_table=table, ddb=ddb)
        # Then it gets the seeded preference; a customer with none or unknown gets []
        assert reads.preferred_engineers(vips[0].customer_id) == vips[0].preferred_engineers
        assert reads.preferred_engineers("c-0001") == []
        assert reads.preferred_engineers("nobody") == []
