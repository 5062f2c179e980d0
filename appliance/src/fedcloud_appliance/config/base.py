"""What every section of appliance.yaml shares: strictness and cron schedules."""

from __future__ import annotations

from typing import Annotated

from apscheduler.triggers.cron import CronTrigger
from pydantic import AfterValidator

from fedcloud_common.model import Model as Section

__all__ = ["Cron", "Section"]


def _valid_cron(expression: str) -> str:
    try:
        CronTrigger.from_crontab(expression, timezone="UTC")
    except ValueError as error:
        raise ValueError(
            f"{expression!r} is not a cron expression ({error}); "
            "write five fields, e.g. '0 */4 * * *' for every 4 hours"
        ) from None
    return expression


Cron = Annotated[str, AfterValidator(_valid_cron)]
