"""Run one job as a container through the Docker SDK and record how it went.

The container is labelled (so operators and ``appliance status`` can find
it, and a restarted supervisor can re-attach to the runs it started),
limited in memory and CPU, killed at the job's timeout, and removed once
its output is captured, with the anonymous volumes its image declares
for paths the job does not mount (one per run would pile up for years).
Secrets reach it only as mounted files: the
environment, which ``docker inspect`` shows to anyone with the socket,
carries no secret.
"""

from __future__ import annotations

import datetime
import logging

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container
from docker.types import Mount as DockerMount

from fedcloud_appliance.execution import Execution
from fedcloud_appliance.jobspec import JobSpec

LOG = logging.getLogger(__name__)
LABEL_PREFIX = "eu.egi.fedcloud"


STARTED_LABEL = f"{LABEL_PREFIX}.started"


def run_labels(spec: JobSpec, record: Execution) -> list[str]:
    """The label filter that finds the one run ``record`` of ``spec`` again."""
    return [
        f"{LABEL_PREFIX}.role=job",
        f"{LABEL_PREFIX}.project={spec.project}",
        f"{LABEL_PREFIX}.job={spec.name}",
        f"{STARTED_LABEL}={record.started.isoformat()}",
    ]


def remove_finished(container: Container) -> bool:
    """Remove a finished job container and its anonymous volumes; whether it went."""
    try:
        container.remove(force=True, v=True)
    except docker.errors.APIError as error:  # leave it for the operator, but say so
        LOG.warning("could not remove finished job container %s: %s", container.name, error)
        return False
    return True


def time_left(spec: JobSpec, record: Execution) -> float:
    """What remains of the job's timeout since the run started (at least a second)."""
    elapsed = (datetime.datetime.now(datetime.UTC) - record.started).total_seconds()
    return max(spec.timeout.total_seconds() - elapsed, 1.0)


# A job's scratch space (S/MIME checks, cASO's config): small, in memory.
TMP_SIZE = "64m"


def labels(spec: JobSpec, record: Execution) -> dict[str, str]:
    return {
        f"{LABEL_PREFIX}.role": "job",
        f"{LABEL_PREFIX}.project": spec.project,
        f"{LABEL_PREFIX}.job": spec.name,
        f"{LABEL_PREFIX}.trigger": record.trigger,
        # Which recorded run this container is: found again after a restart.
        STARTED_LABEL: record.started.isoformat(),
    }


class DockerRunner:
    """Runs JobSpecs; the Docker client is handed in so tests choose the engine."""

    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self.client = client or docker.from_env()

    def run(self, spec: JobSpec, record: Execution) -> Execution:
        try:
            # create + start, not run: run would try to pull a missing image
            # from a registry, and ours are built or loaded locally.
            container = self.client.containers.create(
                spec.image,
                # The whole argv, whatever ENTRYPOINT the image has (the BDII
                # image's is its CLI, the others have none).
                list(spec.command[1:]),
                entrypoint=list(spec.command[:1]),
                labels=labels(spec, record),
                mem_limit=spec.memory,
                nano_cpus=int(spec.cpus * 1e9),
                environment=dict(spec.environment),
                mounts=[
                    DockerMount(m.target, m.source, type=m.kind, read_only=m.read_only)
                    for m in spec.mounts
                ],
                user=spec.user,
                network_mode=spec.network,
                # Hardened: nothing written outside its volumes and a private
                # /tmp, no privilege gained through setuid, no capability but
                # the few its job needs.
                read_only=True,
                tmpfs={"/tmp": f"rw,nosuid,nodev,size={TMP_SIZE}"},
                security_opt=["no-new-privileges"],
                cap_drop=["ALL"],
                cap_add=list(spec.capabilities) or None,
                name=f"{spec.project}-job-{spec.name}-{record.started:%Y%m%dT%H%M%S}",
            )
        except docker.errors.ImageNotFound:
            return record.finish(
                None, "", reason=f"image {spec.image} is not on this host; run make images"
            )
        except docker.errors.APIError as error:
            return record.finish(
                None, "", reason=f"could not create container: {error.explanation}"
            )
        try:
            container.start()
        except docker.errors.APIError as error:
            container.remove(force=True, v=True)
            return record.finish(None, "", reason=f"could not start container: {error.explanation}")
        record.container = container.name
        LOG.info("job %s: started container %s", spec.name, container.name)
        return self._follow(spec, record, container, spec.timeout.total_seconds())

    def reattach(self, spec: JobSpec, record: Execution) -> Execution | None:
        """Follow a run a stopped supervisor started: its real outcome, or None if gone.

        A container still running is waited for (within what is left of the
        job's timeout); one that has exited gives its exit status and output.
        Either way it is removed once read.
        """
        found = self.client.containers.list(all=True, filters={"label": run_labels(spec, record)})
        if not found:
            return None
        container = found[0]
        record.container = container.name
        LOG.info("job %s: re-attached to %s (%s)", spec.name, container.name, container.status)
        return self._follow(spec, record, container, time_left(spec, record))

    def reap(self, project: str, keep: set[str] | None = None) -> int:
        """Remove this project's exited job containers no run is following.

        ``keep``: the start times of runs being re-attached to, whose
        containers are read before they are removed.
        """
        removed = 0
        for container in self.client.containers.list(
            all=True,
            filters={
                "status": "exited",
                "label": [f"{LABEL_PREFIX}.role=job", f"{LABEL_PREFIX}.project={project}"],
            },
        ):
            if container.labels.get(STARTED_LABEL) in (keep or set()):
                continue
            removed += remove_finished(container)
        return removed

    def _follow(
        self, spec: JobSpec, record: Execution, container: Container, timeout_s: float
    ) -> Execution:
        """Wait for the container (killing it at the timeout), read its output, remove it."""
        reason = ""
        try:
            status = container.wait(timeout=timeout_s)
            exit_code = int(status.get("StatusCode", -1))
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            container.kill()
            container.wait(timeout=30)
            exit_code = None
            reason = f"timed out after {spec.timeout}; container killed"
        output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        try:
            container.remove(force=True, v=True)
        except docker.errors.APIError as error:  # leave it for the operator, but say so
            LOG.warning("job %s: could not remove %s: %s", spec.name, container.name, error)
        return record.finish(exit_code, output, reason=reason)  # finish caps it
