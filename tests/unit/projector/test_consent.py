"""Facts about messaging a patient, pure: a `SetConsent` command is a fact kept with its
offset, and a patient's consent to a channel is the one set by the command of the highest
offset, in any order the facts come in; an operator's retry is kept with the first report of
its attempt."""

from __future__ import annotations

import uuid
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from journeys_contracts.commands import RecordDelivery, RetryMessage, SetConsent
from journeys_contracts.deliveries import DeliveryRequested
from journeys_projector.decode import ConsentFact, Source, decode
from journeys_projector.plan import plan
from tests.unit.projector.facts import SECRET, T0

PATIENT = "a" * 64


def consent(channels: dict[str, bool], source: str = "api", minutes: int = 0) -> SetConsent:
    return SetConsent(
        consent_id=uuid.uuid4(), patient_key=PATIENT, channels=channels, source=source,
        changed_at=T0 + timedelta(minutes=minutes),
    )  # fmt: skip


def test_a_consent_command_is_a_fact_with_its_offset() -> None:
    command = consent({"sms": False}, source="sms")
    assert decode(Source.COMMANDS, command.to_json(), offset=41) == ConsentFact(command, 41)


def test_each_channel_keeps_the_latest_change_and_the_others_are_not_touched() -> None:
    stop, email = consent({"sms": False}, "sms"), consent({"email": False, "sms": True})
    rows = plan([ConsentFact(stop, 3), ConsentFact(email, 7)], SECRET).consents
    assert {(c, r.granted, r.source, r.command_offset) for (_, c), r in rows.items()} == {
        ("sms", True, "api", 7), ("email", False, "api", 7)
    }  # fmt: skip


@given(st.permutations(range(6)), st.lists(st.booleans(), min_size=6, max_size=6))
def test_the_highest_offset_wins_whatever_order_the_facts_come_in(
    order: list[int], granted: list[bool]
) -> None:
    # The clocks of the API replicas may disagree: `changedAt` runs backwards here.
    facts = [ConsentFact(consent({"sms": granted[i]}, minutes=-i), 10 + i) for i in order]
    row = plan(facts, SECRET).consents[PATIENT, "sms"]
    assert (row.granted, row.command_offset) == (granted[5], 15)


def test_a_retry_and_the_first_report_of_its_attempt_are_kept() -> None:
    message_id, run_id = uuid.uuid4(), uuid.uuid4()
    request = DeliveryRequested(
        message_id=message_id, run_id=run_id, journey_id=uuid.uuid4(), node_id="n",
        patient_key=PATIENT, patient_id="p", channel="sms", message="hi", attempt=2,
        requested_at=T0,
    )  # fmt: skip
    retry = RetryMessage(patient_key=PATIENT, request=request, requested_at=T0)

    def report(delivered: bool) -> RecordDelivery:
        return RecordDelivery(run_id=run_id, message_id=message_id, channel="sms",
                              delivered=delivered, at=T0, attempt=2)  # fmt: skip

    assert decode(Source.COMMANDS, retry.to_json()) == retry
    rows = plan([retry, report(True), report(False)], SECRET)
    assert [(r.attempt, r.run_id) for r in rows.retries.values()] == [(2, run_id)]
    assert [r.delivered for r in rows.reports.values()] == [True]
