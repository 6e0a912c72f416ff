"""Which parts of a patient event's data its clinic's weekly figures count: only a clinic, a
non-negative decimal revenue and a treatment type; nothing else of the data."""

from __future__ import annotations

from typing import Any

import pytest

from journeys_api.patient_events import clinic_facts
from journeys_contracts.commands import ClinicFacts


@pytest.mark.parametrize(
    ("data", "facts"),
    [
        ({"clinic_id": "c-1", "revenue_amount": "120.50", "treatment_type": "crown"},
         ClinicFacts(clinic_id="c-1", revenue_amount="120.50", treatment_type="crown")),
        ({"clinicId": " c-1 ", "revenueAmount": 10.5, "treatmentType": "cleaning"},
         ClinicFacts(clinic_id="c-1", revenue_amount="10.5", treatment_type="cleaning")),
        ({"clinicId": "c-1", "revenueAmount": 7}, ClinicFacts(clinic_id="c-1", revenue_amount="7")),
        ({"clinicId": "c-1", "revenueAmount": -3}, ClinicFacts(clinic_id="c-1")),
        ({"clinicId": "c-1", "revenueAmount": "1e3"}, ClinicFacts(clinic_id="c-1")),
        ({"clinicId": "c-1", "revenueAmount": True}, ClinicFacts(clinic_id="c-1")),
        ({"clinicId": "c-1", "revenueAmount": float("nan")}, ClinicFacts(clinic_id="c-1")),
        ({"clinicId": "c-1", "treatmentType": ["x"]}, ClinicFacts(clinic_id="c-1")),
        ({"clinicId": "c-1", "note": "private", "patient": {"id": "p"}},
         ClinicFacts(clinic_id="c-1")),
        ({"clinicId": ""}, None),
        ({"clinicId": 7}, None),
        ({"clinicId": "c" * 201}, None),
        ({"note": "no clinic"}, None),
    ],
)  # fmt: skip
def test_only_a_clinic_revenue_and_treatment_type_are_taken(
    data: dict[str, Any], facts: ClinicFacts | None
) -> None:
    assert clinic_facts(data) == facts
