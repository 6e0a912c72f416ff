"""Our producers' partitioner places every keyed record where Kafka's default partitioner
(aiokafka's pure-Python one, the Java client's) places it: records of the API, the executor and
other teams' producers for one patient share a partition only if this holds."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from journeys_runtime.kafka import partition_of, partitioner

REFERENCE = DefaultPartitioner()


@given(st.binary(max_size=200), st.integers(1, 64))
def test_a_keyed_record_goes_where_the_default_partitioner_sends_it(key: bytes, count: int) -> None:
    partitions = list(range(count))
    assert partition_of(key, count) == REFERENCE(key, partitions, partitions)
    assert partitioner(key, partitions, partitions[:1]) == REFERENCE(key, partitions, partitions)


def test_known_values_of_the_java_client() -> None:
    # Kafka's own test vectors (UtilsTest.testMurmur2), as the partition of 2**31 partitions.
    vectors = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
               b"a-little-bit-longer-string": -1486304829,
               b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
               b"abc": 479470107}  # fmt: skip
    for key, signed in vectors.items():
        assert partition_of(key, 2**31) == (signed & 0x7FFFFFFF) % 2**31


def test_a_record_without_a_key_goes_to_an_available_partition() -> None:
    assert {partitioner(None, [0, 1, 2, 3], [2]) for _ in range(20)} == {2}
    assert {partitioner(None, [0, 1], []) for _ in range(50)} <= {0, 1}
