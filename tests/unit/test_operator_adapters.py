"""Request shapes of the adapters the operator CLI reads and writes the registry through."""

from __future__ import annotations

from aftercare.adapters.reference import batch_requests, put_if_absent_request
from aftercare.adapters.registry import customer_devices_query, register_device_request


def test_a_device_is_registered_only_when_its_thing_is_free():
    request = register_device_request("devices", {"thing": "ac-hp-0001", "region": "eu-west"})
    assert request["ConditionExpression"] == "attribute_not_exists(thing)"
    assert request["Item"]["thing"] == {"S": "ac-hp-0001"}


def test_a_customers_region_comes_from_one_of_its_devices():
    query = customer_devices_query("devices", "c-0001")
    assert query["IndexName"] == "by_customer" and query["Limit"] == 1
    assert query["ExpressionAttributeValues"] == {":c": {"S": "c-0001"}}


def test_reference_data_never_overwrites():
    request = put_if_absent_request("inventory", {"pk": "PART#X", "sk": "META"}, "pk")
    assert request["ConditionExpression"] == "attribute_not_exists(#key)"
    assert request["ExpressionAttributeNames"] == {"#key": "pk"}


def test_a_seed_is_written_25_items_a_request():
    requests = batch_requests("customers", [{"customer_id": f"c-{n}"} for n in range(51)])
    assert [len(r["customers"]) for r in requests] == [25, 25, 1]
    assert requests[0]["customers"][0] == {"PutRequest": {"Item": {"customer_id": {"S": "c-0"}}}}
