"""The support API's route groups' settings, apart from their routes.

`functions/api` validates every group's settings on its first invocation (a missing variable
fails with its name), while a group's routes, models and adapters are imported by the first
request to one of them (`HttpApiResolver.include_on_first_use`).
"""

from __future__ import annotations

from aftercare.settings import EnvSettings


class FieldSettings(EnvSettings):
    """Slots, bookings and engineers (`aftercare.api.field_routes`)."""

    field_table: str
    tickets_table: str
    devices_table: str
    customers_table: str
    inventory_table: str


class RaisedSettings(EnvSettings):
    """Raised tickets, classification and tasks (`aftercare.api.raised_routes`)."""

    tickets_table: str
    devices_table: str
    customers_table: str
    inventory_table: str
    iot_data_endpoint: str
    diagnostics_timeout_s: int
    repeat_window_days: int
    hold_hours: int


class SelfServiceSettings(EnvSettings):
    """Guides and self-service (`aftercare.api.guide_routes`)."""

    tickets_table: str
    devices_table: str
    inventory_table: str
    iot_data_endpoint: str  # empty in AWS: the account's iot:Data-ATS endpoint is looked up
    diagnostics_timeout_s: int
