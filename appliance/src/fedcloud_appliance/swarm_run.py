"""Run one job as a swarm job (a ``replicated-job`` service) and record how it went.

When the supervisor is itself a swarm task (the compose file deployed with
``docker stack deploy``), a plain container would always start on the
supervisor's node. A one-shot job service lets the swarm place the job on
any node that has its image and volumes, and the job still ends, like a
container, with one exit status and its output.

Same contract as :class:`~fedcloud_appliance.docker_run.DockerRunner`: the
service and its container carry the same labels (so ``reattach`` and
``reap`` find them after a restart), the same limits and hardening as far
as the service API allows (API 1.41 has no ``no-new-privileges`` and no
tmpfs mount flags), the job's timeout, and removal once the output is read.
The service is also in the stack's namespace, so ``docker stack rm`` takes a
running job with it instead of leaving it holding the stack's volumes.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import time
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.services import Service
from docker.types import Mount as DockerMount
from docker.types import Resources, RestartPolicy, ServiceMode
from docker.utils import parse_bytes

from fedcloud_appliance.docker_run import (
    LABEL_PREFIX,
    STARTED_LABEL,
    TMP_SIZE,
    labels,
    remove_finished,
    run_labels,
    time_left,
)
from fedcloud_appliance.execution import Execution
from fedcloud_appliance.jobspec import JobSpec
from fedcloud_common.faults import cut

LOG = logging.getLogger(__name__)
STACK_LABEL = "com.docker.stack.namespace"
SWARM_SERVICE_LABEL = "com.docker.swarm.service.name"
SERVICE_ID_LABEL = "com.docker.swarm.service.id"
# A task in one of these states will not run (again): its outcome is final.
ENDED = frozenset({"complete", "failed", "rejected", "shutdown", "orphaned", "remove"})
# How a task that ran and exited non-zero is described; any other error is
# the swarm's own (image missing, mount refused, node gone).
_NON_ZERO = "task: non-zero exit"
_CONTAINER_ID = re.compile(r"/containers/([0-9a-f]{64})/")


def in_swarm_task(client: docker.DockerClient) -> bool:
    """Whether this process runs as a swarm task on a manager, so jobs can be services.

    Its own container (found by hostname, or by the engine's files mounted
    into it) carries the swarm's service label. On a worker node no service
    can be created: jobs then run as containers on that node.
    """
    own = None
    for name in _own_container_ids():
        try:
            own = client.containers.get(name)
            break
        except docker.errors.DockerException:
            continue
    if own is None or SWARM_SERVICE_LABEL not in own.labels:
        return False
    if not client.info().get("Swarm", {}).get("ControlAvailable", False):
        LOG.warning("running on a swarm worker: jobs run as containers on this node")
        return False
    return True


def _own_container_ids() -> list[str]:
    """Our hostname (the short container id unless a hostname was set) and the id in mountinfo."""
    names = [socket.gethostname()]
    with contextlib.suppress(OSError):
        names += _CONTAINER_ID.findall(Path("/proc/self/mountinfo").read_text())[:1]
    return names


def service_options(spec: JobSpec, record: Execution) -> dict[str, Any]:
    """The job as ``services.create`` keyword arguments: one task, never restarted."""
    job_labels = {**labels(spec, record), STACK_LABEL: spec.project}
    return {
        "name": f"{spec.project}-job-{spec.name}-{record.started:%Y%m%dT%H%M%S}",
        "image": spec.image,
        # The whole argv, whatever ENTRYPOINT the image has (as DockerRunner).
        "command": list(spec.command[:1]),
        "args": list(spec.command[1:]),
        "env": [f"{key}={value}" for key, value in spec.environment],
        "user": spec.user,
        "mounts": [
            DockerMount(m.target, m.source, type=m.kind, read_only=m.read_only) for m in spec.mounts
        ]
        + [DockerMount("/tmp", None, type="tmpfs", tmpfs_size=TMP_SIZE, tmpfs_mode=0o1777)],
        "labels": job_labels,
        "container_labels": job_labels,
        "mode": ServiceMode("replicated-job"),
        # A failed job is retried by the supervisor's policy, not by the swarm.
        "restart_policy": RestartPolicy(condition="none"),
        "resources": Resources(
            cpu_limit=int(spec.cpus * 1e9), mem_limit=int(parse_bytes(spec.memory))
        ),
        "read_only": True,
        "cap_drop": ["ALL"],
        "cap_add": list(spec.capabilities) or None,
        "networks": [spec.network] if spec.network else None,
    }


class SwarmRunner:
    """Runs JobSpecs as swarm jobs; the Docker client is handed in so tests choose the engine."""

    def __init__(self, client: docker.DockerClient | None = None, poll_s: float = 1.0) -> None:
        self.client = client or docker.from_env()
        self.poll_s = poll_s

    def run(self, spec: JobSpec, record: Execution) -> Execution:
        try:
            service = self.client.services.create(**service_options(spec, record))
        except docker.errors.APIError as error:
            return record.finish(
                None, "", reason=f"could not create job service: {error.explanation}"
            )
        record.container = service.name
        LOG.info("job %s: started swarm job %s", spec.name, service.name)
        return self._follow(spec, record, service, spec.timeout.total_seconds())

    def reattach(self, spec: JobSpec, record: Execution) -> Execution | None:
        """Follow a job service a stopped supervisor started: its real outcome, or None if gone."""
        found = self.client.services.list(filters={"label": run_labels(spec, record)})
        if not found:
            return None
        service = found[0]
        record.container = service.name
        LOG.info("job %s: re-attached to swarm job %s", spec.name, service.name)
        return self._follow(spec, record, service, time_left(spec, record))

    def reap(self, project: str, keep: set[str] | None = None) -> int:
        """Remove this project's ended job services, and job containers left without one.

        ``keep``: the start times of runs being re-attached to. Services whose
        task has not ended are left: a manual run may be following them.
        Returns how many runs were cleared away.
        """
        keep = keep or set()
        ours = [f"{LABEL_PREFIX}.role=job", f"{LABEL_PREFIX}.project={project}"]
        removed, live = 0, set()
        for service in self.client.services.list(filters={"label": ours}):
            task = _task(service)
            if (
                service.attrs["Spec"].get("Labels", {}).get(STARTED_LABEL) in keep
                or task is None
                or task["Status"]["State"] not in ENDED
            ):
                live.add(service.id)
                continue
            removed += self._discard(service, task)
        # Containers whose service is gone: engines before 24 leave a finished
        # job's container behind when its service is removed (moby#44312).
        for container in self.client.containers.list(
            all=True,
            filters={"status": ["exited", "created"], "label": [*ours, SERVICE_ID_LABEL]},
        ):
            if (
                container.labels.get(SERVICE_ID_LABEL) in live
                or container.labels.get(STARTED_LABEL) in keep
            ):
                continue
            removed += remove_finished(container)
        return removed

    def _follow(
        self, spec: JobSpec, record: Execution, service: Service, timeout_s: float
    ) -> Execution:
        """Wait for the one task to end (removing the service at the timeout), read, remove."""
        deadline = time.monotonic() + timeout_s
        task = None
        try:
            while (task := _task(service)) is None or task["Status"]["State"] not in ENDED:
                if time.monotonic() >= deadline:
                    output = _logs(service)
                    self._discard(service, task)
                    return record.finish(
                        None,
                        output,
                        reason=f"timed out after {spec.timeout}{_waiting(task)}; "
                        "job service removed",
                    )
                time.sleep(self.poll_s)
        except docker.errors.NotFound:
            return record.finish(
                None, "", reason=f"job service {service.name} was removed while it ran"
            )
        output = _logs(service)
        self._discard(service, task)
        status = task["Status"]
        exit_code = status.get("ContainerStatus", {}).get("ExitCode")
        error = status.get("Err", "")
        if status["State"] == "complete":
            return record.finish(exit_code or 0, output)
        if status["State"] == "failed" and error.startswith(_NON_ZERO):
            return record.finish(exit_code, output)  # its own failure: finish says why
        # Never started, or stopped by the swarm: no exit status of its own
        # (the API reports 0 for a task that had no container).
        return record.finish(None, output, reason=self._refusal(spec, task))

    def _refusal(self, spec: JobSpec, task: dict[str, Any]) -> str:
        """One line on why the swarm did not run the job (or stopped it), with the fix."""
        status = task["Status"]
        node = task.get("NodeID", "")
        with contextlib.suppress(docker.errors.DockerException, KeyError):
            node = self.client.nodes.get(node).attrs["Description"]["Hostname"]
        error = status.get("Err") or status.get("Message") or "no reason given"
        reason = f"job task {status['State']} on node {node or '?'}: {error}"
        if "No such image" in error:
            reason += f"; every swarm node needs {spec.image} (make images, or docker load)"
        return cut(reason, 300)

    def _discard(self, service: Service, task: dict[str, Any] | None) -> int:
        """Remove the service, and its task's container if it is on this node (1: removed).

        Removing the service stops a task still running. Engines before 24
        leave a finished job's container (moby#44312): removed here as well,
        and ``reap`` sweeps up what another node or a crash left.
        """
        try:
            service.remove()
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as error:  # leave it for the operator, but say so
            LOG.warning("could not remove job service %s: %s", service.name, error)
            return 0
        container = ((task or {}).get("Status", {}).get("ContainerStatus") or {}).get("ContainerID")
        if container:
            try:
                self.client.containers.get(container).remove(force=True, v=True)
            except docker.errors.NotFound:
                pass  # on another node, or already gone
            except docker.errors.APIError as error:
                LOG.warning("could not remove job container %s: %s", container[:12], error)
        return 1


def _task(service: Service) -> dict[str, Any] | None:
    """The job's task (the newest, should the swarm ever have made two)."""
    tasks = service.tasks()
    return max(tasks, key=lambda task: task["CreatedAt"]) if tasks else None


def _waiting(task: dict[str, Any] | None) -> str:
    """What the task was doing when time ran out (pending on resources, pulling...)."""
    if task is None:
        return " (no task scheduled)"
    status = task["Status"]
    error = status.get("Err")
    return f" (task {status['State']}{f': {error}' if error else ''})"


def _logs(service: Service) -> str:
    """The task's stdout and stderr, through the swarm (json-file or journald log driver)."""
    try:
        return b"".join(service.logs(stdout=True, stderr=True)).decode("utf-8", "replace")
    except docker.errors.APIError as error:
        LOG.warning("could not read the output of %s: %s", service.name, error)
        return ""
