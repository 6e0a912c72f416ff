"""Idempotency keys: a stable run id per (journey, key), and only hashes are stored."""

from __future__ import annotations

import uuid

from journeys_api.idempotency import body_hash, key_hash, run_id_for

JOURNEY = uuid.UUID("3f0c6d7e-2b1a-4c5d-9e8f-0a1b2c3d4e5f")


def test_same_journey_and_key_always_name_the_same_run() -> None:
    assert run_id_for(JOURNEY, "order-77") == run_id_for(JOURNEY, "order-77")


def test_the_same_key_under_another_journey_names_another_run() -> None:
    assert run_id_for(JOURNEY, "order-77") != run_id_for(uuid.uuid4(), "order-77")


def test_body_hash_ignores_key_order_but_not_values() -> None:
    assert body_hash({"id": "p", "age": 72}) == body_hash({"age": 72, "id": "p"})
    assert body_hash({"id": "p", "age": 72}) != body_hash({"id": "p", "age": 73})


def test_hashes_do_not_contain_the_key_or_the_patient_data() -> None:
    assert "order-77" not in key_hash("order-77")
    assert "patient-123" not in body_hash({"id": "patient-123"})
    assert len(key_hash("order-77")) == len(body_hash({})) == 64


def test_body_hash_takes_integers_beyond_64_bits() -> None:
    assert body_hash({"id": 2**80}) != body_hash({"id": 2**80 + 1})
