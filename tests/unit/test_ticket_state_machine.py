"""The ticket state machine: allowed transitions and lock bookkeeping."""

from __future__ import annotations

import itertools

import pytest
from aftercare.domain.tickets import (
    ACTIVE_STATES,
    TRANSITIONS,
    InvalidTransition,
    check_transition,
    ticket_id_for,
)
from aftercare.models.tickets import TicketStatus


@pytest.mark.parametrize(("current", "target"), list(itertools.product(TicketStatus, TicketStatus)))
def test_only_documented_transitions_are_allowed(current, target):
    # Given any pair of states
    # When a transition is checked
    # Then it passes exactly when the table allows it, and otherwise names the allowed ones
    if target in TRANSITIONS[current]:
        check_transition(current, target)
    else:
        with pytest.raises(InvalidTransition, match=f"from {current} to {target}"):
            check_transition(current, target)


def test_terminal_states_allow_nothing():
    assert not TRANSITIONS[TicketStatus.CLOSED] and not TRANSITIONS[TicketStatus.CANCELLED]


def test_every_active_state_can_reach_resolution_or_cancellation():
    for state in ACTIVE_STATES:
        assert TRANSITIONS[state] & {
            TicketStatus.RESOLVED,
            TicketStatus.CANCELLED,
            TicketStatus.AWAITING_PARTS,
        }


def test_ticket_id_is_deterministic_per_fault():
    assert ticket_id_for("a", "f1") == ticket_id_for("a", "f1") != ticket_id_for("a", "f2")
