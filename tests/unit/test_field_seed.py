"""The seeded field directory (`data/engineers.yaml`): what the local stack and `admin seed`
write into FieldTable."""

from __future__ import annotations

from collections import Counter

from aftercare.domain.calendar import eligible

from infra.admin.seed import item_kind
from infra.seeding import MODELS, REGIONS, field_directory, field_items
from tests.fakes.diagnostics import make_ticket


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
