"""Run one job as a container through the Docker SDK and record how it went.

The container is labelled (so operators and ``appliance status`` can find
it), limited in memory and CPU, killed at the job's timeout, and removed
once its output is captured. Secrets reach it only as mounted files: the
environment, which ``docker inspect`` shows to anyone with the socket,
carries no secret.
"""

from __future__ import annotations

import logging

import docker
import docker.errors
import requests.exceptions
from docker.types import Mount as DockerMount

from fedcloud_appliance.execution import Execution
from fedcloud_appliance.jobspec import JobSpec

LOG = logging.getLogger(__name__)
LABEL_PREFIX = "eu.egi.fedcloud"


def labels(spec: JobSpec, trigger: str) -> dict[str, str]:
    return {
        f"{LABEL_PREFIX}.role": "job",
        f"{LABEL_PREFIX}.project": spec.project,
        f"{LABEL_PREFIX}.job": spec.name,
        f"{LABEL_PREFIX}.trigger": trigger,
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
                labels=labels(spec, record.trigger),
                mem_limit=spec.memory,
                nano_cpus=int(spec.cpus * 1e9),
                environment=dict(spec.environment),
                mounts=[
                    DockerMount(m.target, m.source, type=m.kind, read_only=m.read_only)
                    for m in spec.mounts
                ],
                user=spec.user,
                network_mode=spec.network,
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
            container.remove(force=True)
            return record.finish(None, "", reason=f"could not start container: {error.explanation}")
        record.container = container.name
        LOG.info("job %s: started container %s", spec.name, container.name)
        reason = ""
        try:
            status = container.wait(timeout=spec.timeout.total_seconds())
            exit_code = int(status.get("StatusCode", -1))
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            container.kill()
            container.wait(timeout=30)
            exit_code = None
            reason = f"timed out after {spec.timeout}; container killed"
        output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        try:
            container.remove(force=True)
        except docker.errors.APIError as error:  # leave it for the operator, but say so
            LOG.warning("job %s: could not remove %s: %s", spec.name, container.name, error)
        return record.finish(exit_code, output, reason=reason)  # finish caps it
