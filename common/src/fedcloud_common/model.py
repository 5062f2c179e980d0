"""The base of every typed contract: appliance.yaml's sections, each service's
rendered settings, spool requests and status records.

Unknown keys are errors (a misspelt key must never be silently ignored),
and values are immutable once validated, so what was checked is what runs.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
