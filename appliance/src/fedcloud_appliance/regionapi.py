"""GlanceSync's REST API (its server mode), beside the status page.

    GET  /v1/regions                         every region's last outcome and image counts
    GET  /v1/regions/{region}                one region's
    POST /v1/regions/{region}                start a sync of that region: 202 and a task
    GET  /v1/regions/{region}/tasks/{id}     the task's status and result

Every call needs ``X-Auth-Token``, a token of the master's Keystone. It is
validated by Keystone itself (``GET /v3/auth/tokens`` with the token as its
own subject, which Keystone's default policy allows any valid token), so
the appliance needs no credential of its own for it and never trusts what
it cannot check. Starting a sync needs the ``admin`` role. Tasks are the
supervisor's region-sync runs for one region; they are kept in memory (a
restart forgets tasks, never runs: those are in the job history).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from fedcloud_common.regionstatus import STATUS_FILE, RunRecord

LOG = logging.getLogger(__name__)
ADMIN_ROLE = "admin"
VALID_FOR_S = 60  # a validated token is trusted this long before asking Keystone again
MAX_TASKS = 200

Response = tuple[int, dict[str, Any]]
# Runs one region's sync to the end; returns (outcome, summary line, reason).
StartSync = Callable[[str], tuple[str, str, str]]


@dataclasses.dataclass(frozen=True)
class Caller:
    user: str
    roles: frozenset[str]


class Keystone:
    """Validates tokens against one Keystone (v3), caching each for a minute."""

    def __init__(self, auth_url: str, verify: str | bool = True, timeout: float = 10) -> None:
        self.url = auth_url.rstrip("/") + "/auth/tokens"
        self.verify, self.timeout = verify, timeout
        self._cache: dict[str, tuple[float, Caller]] = {}
        self._lock = threading.Lock()

    def validate(self, token: str) -> Caller | None:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(token)
            if cached and now - cached[0] < VALID_FOR_S:
                return cached[1]
        try:
            reply = requests.get(
                self.url,
                headers={"X-Auth-Token": token, "X-Subject-Token": token},
                timeout=self.timeout,
                verify=self.verify,
            )
        except requests.RequestException as error:
            LOG.warning("region API: Keystone unreachable: %s", error)
            return None
        if reply.status_code != 200:
            return None
        body = reply.json().get("token", {})
        caller = Caller(
            user=str(body.get("user", {}).get("name", "")),
            roles=frozenset(str(role.get("name")) for role in body.get("roles", [])),
        )
        with self._lock:
            if len(self._cache) > 1000:
                self._cache.clear()
            self._cache[token] = (now, caller)
        return caller


@dataclasses.dataclass
class Task:
    id: str
    region: str
    user: str
    created: str
    status: str = "running"  # then the run's outcome: ok, partial, failed, skipped
    result: str = ""
    reason: str = ""

    def view(self) -> dict[str, Any]:
        return {
            "taskId": self.id,
            "region": self.region,
            "user": self.user,
            "created": self.created,
            "status": self.status,
            "result": self.result,
            "reason": self.reason,
        }


class RegionApi:
    def __init__(self, keystone: Keystone, start: StartSync, state_dir: Path) -> None:
        self.keystone, self._start, self.state_dir = keystone, start, state_dir
        self.tasks: dict[str, Task] = {}
        self._lock = threading.Lock()

    def handle(self, method: str, path: str, headers: Any) -> Response:
        token = headers.get("X-Auth-Token")
        caller = self.keystone.validate(token) if token else None
        if caller is None:
            return 401, {"error": "a valid X-Auth-Token of the master's Keystone is required"}
        parts = [p for p in path.split("/") if p][1:]  # after "v1"
        if not parts or parts[0] != "regions" or len(parts) > 4:
            return 404, {"error": f"no such resource: {path}"}
        if len(parts) == 1 and method == "GET":
            return 200, {"regions": self._regions()}
        region = parts[1] if len(parts) > 1 else ""
        if len(parts) == 2 and method == "GET":
            found = [r for r in self._regions() if r["region"] == region]
            if not found:
                return 404, {"error": f"region {region!r} has no recorded sync"}
            return 200, found[0]
        if len(parts) == 2 and method == "POST":
            if ADMIN_ROLE not in caller.roles:
                return 403, {"error": "starting a sync needs the admin role"}
            return 202, self._begin(region, caller).view()
        if len(parts) == 4 and parts[2] == "tasks" and method == "GET":
            task = self.tasks.get(parts[3])
            if task is None or task.region != region:
                return 404, {"error": f"no task {parts[3]!r} for region {region!r}"}
            return 200, task.view()
        return 405 if method == "POST" else 404, {"error": f"{method} {path} is not supported"}

    def _regions(self) -> list[dict[str, Any]]:
        try:
            record = RunRecord.model_validate_json((self.state_dir / STATUS_FILE).read_bytes())
        except (OSError, ValueError):
            return []
        return [
            {
                "region": r.region,
                "status": r.outcome,
                "reason": r.reason,
                "images": r.after or r.before,
                "finished": record.finished.isoformat(),
            }
            for r in record.regions
        ]

    def _begin(self, region: str, caller: Caller) -> Task:
        task = Task(
            id=str(uuid.uuid4()),
            region=region,
            user=caller.user,
            created=datetime.datetime.now(datetime.UTC).isoformat(),
        )
        with self._lock:
            if len(self.tasks) >= MAX_TASKS:
                done = [t for t in self.tasks.values() if t.status != "running"]
                for old in done[: len(done) // 2 or 1]:
                    self.tasks.pop(old.id, None)
            self.tasks[task.id] = task
        threading.Thread(target=self._run, args=(task,), daemon=True).start()
        return task

    def _run(self, task: Task) -> None:
        try:
            outcome, summary, reason = self._start(task.region)
        except Exception as error:  # a task must end with a reason, never hang
            LOG.exception("region API: sync of %s failed to run", task.region)
            outcome, summary, reason = "failed", "", f"could not run: {error}"
        task.result, task.reason, task.status = summary, reason, outcome


def handler(api: RegionApi) -> Callable[[str, str, Any], tuple[int, bytes]]:
    """The web server's hook for /v1/...: status code and JSON body."""

    def handle(method: str, path: str, headers: Any) -> tuple[int, bytes]:
        code, body = api.handle(method, path, headers)
        return code, json.dumps(body).encode()

    return handle
