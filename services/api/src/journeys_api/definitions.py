"""Journey definitions by id: immutable, so a bounded in-memory cache in front of the read model."""

from __future__ import annotations

from collections import OrderedDict
from uuid import UUID

from journeys_api.read_models import ReadModels
from journeys_contracts.definition import JourneyDefinition


class JourneyDefinitions:
    """Only known journeys are cached: an unknown id is asked again (it may be projected soon)."""

    def __init__(self, read_models: ReadModels, size: int) -> None:
        self._read_models = read_models
        self._size = size
        self._cache: OrderedDict[UUID, JourneyDefinition] = OrderedDict()

    def remember(self, journey_id: UUID, definition: JourneyDefinition) -> None:
        if self._size == 0:
            return
        self._cache[journey_id] = definition
        self._cache.move_to_end(journey_id)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)

    async def get(self, journey_id: UUID) -> JourneyDefinition | None:
        cached = self._cache.get(journey_id)
        if cached is not None:
            self._cache.move_to_end(journey_id)
            return cached
        row = await self._read_models.journey(journey_id)
        if row is None:
            return None
        definition = JourneyDefinition.model_validate(row["definition"])
        self.remember(journey_id, definition)
        return definition
