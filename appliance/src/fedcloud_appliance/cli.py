"""appliance: check the config, run the supervisor, show status, run a job.

appliance config check      validate the config file and the files it names
appliance serve             run the scheduler and the status page
appliance status [--json]   last and next run of every job, service health
appliance run JOB           run one job now and wait for it
appliance migrate           print an appliance.yaml from a cloudkeeper/atrope install
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import docker
import docker.errors

from fedcloud_appliance import connect, jobs, loader, metrics, regionapi, render, status, web
from fedcloud_appliance.config import ApplianceConfig, glancesync_ini
from fedcloud_appliance.docker_run import DockerRunner
from fedcloud_appliance.history import History
from fedcloud_appliance.migrate import command as migrate_command
from fedcloud_appliance.runlog import RunLog
from fedcloud_appliance.scheduler import RetryPolicy, Supervisor
from fedcloud_appliance.swarm_run import SwarmRunner, in_swarm_task
from fedcloud_common import settings
from fedcloud_common.errors import ConfigError
from fedcloud_common.settings.cloudkeeper import CloudkeeperSettings
from fedcloud_common.settings.glancesync import GlanceSyncSettings

LOG = logging.getLogger("appliance")


def _runner(client: docker.DockerClient) -> DockerRunner | SwarmRunner:
    """Swarm jobs when this supervisor is a swarm task (any node may run them), else containers."""
    return SwarmRunner(client) if in_swarm_task(client) else DockerRunner(client)


def _supervisor(config: ApplianceConfig, client: docker.DockerClient | None) -> Supervisor:
    state = config.supervisor.state_dir
    runner = _runner(client) if client else None

    def run(spec, record):  # type: ignore[no-untyped-def]
        if runner is None:
            return record.finish(None, "", reason="Docker engine unreachable")
        return runner.run(spec, record)

    return Supervisor(
        jobs.job_specs(
            config,
            version("fedcloud-appliance"),
            _project(),
        ),
        run,
        History(state / "history.sqlite"),
        state / "locks",
        reattach=runner.reattach if runner else None,
        retry=RetryPolicy(config.supervisor.retries, config.supervisor.retry_after),
        report=RunLog(config.supervisor.log_format),
    )


def _project() -> str:
    """The compose project (or stack) this supervisor belongs to."""
    return os.environ.get("FEDCLOUD_COMPOSE_PROJECT", jobs.DEFAULT_PROJECT)


def _docker() -> docker.DockerClient | None:
    try:
        client = docker.from_env()
        client.ping()
        return client
    except docker.errors.DockerException as error:
        LOG.warning("Docker engine unreachable: %s", error)
        return None


def cmd_config_check(args: argparse.Namespace) -> int:
    config = loader.load(args.config)
    enabled = [name for name in ("images", "bdii", "accounting") if getattr(config, name).enabled]
    print(
        f"{loader.config_path(args.config)}: OK (site {config.site.name}; "
        f"enabled: {', '.join(enabled) or 'nothing'})"
    )
    if not args.connect:
        return 0
    checks = connect.check_all(config)
    for check in checks:
        print(check.line())
    failed = [check for check in checks if not check.ok]
    print(f"{len(checks) - len(failed)} of {len(checks)} connection check(s) passed")
    return 1 if failed else 0


# The port the status page listens on inside the supervisor's container;
# supervisor.status_port is the host port compose publishes it on.
STATUS_PORT_IN_CONTAINER = 8080


def compose_environment(config: ApplianceConfig) -> dict[str, str]:
    """The host-side settings compose needs, which only appliance.yaml knows.

    systemd/fedcloud-compose reads them (``appliance config env``) before it
    starts anything, so the published ports follow the config file.
    """
    return {
        "FEDCLOUD_BDII_PORT": str(config.bdii.port),
        "FEDCLOUD_STATUS_PORT": str(config.supervisor.status_port),
        "FEDCLOUD_IMAGE_DATA": str(config.images.store),
    }


def cmd_config_env(args: argparse.Namespace) -> int:
    config = loader.load(args.config, check_files=False)
    for key, value in compose_environment(config).items():
        print(f"{key}={value}")
    return 0


def _render_dir(args: argparse.Namespace) -> Path:
    return Path(
        getattr(args, "out", None)
        or os.environ.get(render.RENDER_DIR_ENV, render.DEFAULT_RENDER_DIR)
    )


def cmd_render(args: argparse.Namespace) -> int:
    config = loader.load(args.config)
    for path in render.render_all(config, _render_dir(args)):
        print(f"rendered {path}")
    return 0


def _appliance(config: ApplianceConfig, args: argparse.Namespace) -> status.Appliance:
    """What the page says this appliance is, and where image replication's status is.

    The status files are in cloudkeeper's ``state_dir`` as rendered for it
    (the image spool volume, which compose mounts into the supervisor
    read-only); before the first render, the settings' default.
    """
    state_dir = None
    if config.images.enabled:
        try:
            rendered = settings.load(CloudkeeperSettings, _render_dir(args) / "cloudkeeper.json")
        except ConfigError:
            rendered = CloudkeeperSettings()
        state_dir = rendered.state_dir
    region_state = None
    if config.regions.enabled:
        try:
            sync = settings.load(GlanceSyncSettings, _render_dir(args) / "glancesync.json")
            region_state = sync.state_dir
        except ConfigError:
            region_state = GlanceSyncSettings.model_fields["state_dir"].default
    return status.Appliance(
        site=config.site.name,
        host=config.site.hostname,
        image_state_dir=state_dir,
        image_lists=tuple(lst.name for lst in config.images.lists if lst.enabled),
        region_state_dir=region_state,
    )


def cmd_status(args: argparse.Namespace) -> int:
    try:
        config = loader.load(args.config, check_files=False)
    except loader.ConfigError as error:
        # Still useful: what is wrong, and whether the services run.
        report = status.config_problem(str(error), _docker(), _project())
        print(status.as_json(report) if args.json else status.as_text(report))
        return 2
    report = status.collect(
        _supervisor(config, None), _docker(), _project(), _appliance(config, args)
    )
    print(status.as_json(report) if args.json else status.as_text(report))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    config = loader.load(args.config)
    supervisor = _supervisor(config, _docker())
    if args.job not in supervisor.specs:
        print(
            f"unknown or disabled job {args.job!r}; jobs: {', '.join(supervisor.specs)}",
            file=sys.stderr,
        )
        return 2
    record = supervisor.run_job(args.job, "manual")
    print(record.output, end="" if record.output.endswith("\n") else "\n")
    print(f"{record.job}: {record.outcome}{f' ({record.reason})' if record.reason else ''}")
    return 0 if record.outcome in ("ok", "skipped") else 1


CONFIG_RETRY_S = 30.0


def _valid_config(
    args: argparse.Namespace, stop: threading.Event, port: int = STATUS_PORT_IN_CONTAINER
) -> ApplianceConfig | None:
    """The config, once it is valid; meanwhile the status page shows what is wrong.

    A typo must not crash-loop the supervisor: the page stays up with the
    loader's message (and the services' health), and the file is read again
    every ``CONFIG_RETRY_S`` until it is fixed.
    """
    server = None
    problem = [""]
    try:
        while not stop.is_set():
            try:
                return loader.load(args.config)
            except loader.ConfigError as error:
                if str(error) != problem[0]:
                    LOG.error("invalid configuration; the status page shows it, and the file "
                              "is read again every %.0f s:\n%s", CONFIG_RETRY_S, error)  # fmt: skip
                problem[0] = str(error)
            if server is None:
                server = web.serve(
                    port,
                    functools.partial(_config_problem, problem, _docker(), _project()),
                )
            stop.wait(CONFIG_RETRY_S)
        return None
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()


def _config_problem(
    problem: list[str], client: docker.DockerClient | None, project: str
) -> dict[str, object]:
    return status.config_problem(problem[0], client, project)


def _region_api(
    config: ApplianceConfig, supervisor: Supervisor, appliance: status.Appliance
) -> Callable[[str, str, Any], tuple[int, bytes]] | None:
    """region-sync's REST API, when regions and its api are enabled."""
    regions = config.regions
    if not (regions.enabled and regions.api) or appliance.region_state_dir is None:
        return None
    auth_url = master_auth_url(config)
    if auth_url is None:
        LOG.warning("region API off: the master's credentials name no auth_url (clouds.yaml)")
        return None

    def start(region: str) -> tuple[str, str, str]:
        record = supervisor.run_job("region-sync", args=(region,))
        return record.outcome, record.summary, record.reason

    keystone = regionapi.Keystone(auth_url, verify=str(config.outbound.ca_bundle or "") or True)
    return regionapi.handler(regionapi.RegionApi(keystone, start, appliance.region_state_dir))


def master_auth_url(config: ApplianceConfig) -> str | None:
    """The Keystone the region API validates tokens with: the sync master's."""
    regions = config.regions
    if regions.glancesync_conf is not None:
        return glancesync_ini.read(regions.glancesync_conf).targets["master"].auth_url
    auth = (regions.master.openstack if regions.master else None) or config.openstack
    return str(auth.auth_url) if auth and auth.auth_url else None


def cmd_serve(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    config = _valid_config(args, stop)
    if config is None:
        return 0
    rendered = render.render_all(config, _render_dir(args))
    LOG.info("rendered %s", ", ".join(p.name for p in rendered) or "nothing")
    client = _docker()
    supervisor = _supervisor(config, client)
    project = _project()
    appliance = _appliance(config, args)
    server = web.serve(
        STATUS_PORT_IN_CONTAINER,
        lambda: status.collect(supervisor, client, project, appliance),
        metrics=metrics.ApplianceMetrics(supervisor, appliance).exposition,
        api=_region_api(config, supervisor, appliance),
    )
    if client is not None:
        # Exited job containers no recorded run will follow (left by a crash):
        # their outcome is recorded or lost, and they would only pile up.
        following = {record.started.isoformat() for _, record in supervisor.history.running()}
        _runner(client).reap(project, keep=following)
    supervisor.start(catch_up=not args.no_catch_up)
    LOG.info("supervising %s; status on port %d", ", ".join(supervisor.specs), server.server_port)
    stop.wait()
    LOG.info("stopping: waiting for running jobs")
    supervisor.stop()
    server.shutdown()
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="appliance", description=__doc__.splitlines()[0])
    root.add_argument(
        "--config", help=f"config file (default: ${loader.PATH_ENV} or {loader.config_path()})"
    )
    root.add_argument("--version", action="version", version=version("fedcloud-appliance"))
    commands = root.add_subparsers(dest="command", required=True)
    config = commands.add_parser("config", help="configuration").add_subparsers(
        dest="action", required=True
    )
    check = config.add_parser("check", help="validate the config file")
    check.add_argument(
        "--connect",
        action="store_true",
        help="also log in to Keystone and fetch each image list, saying what works",
    )
    check.set_defaults(func=cmd_config_check)
    config.add_parser(
        "env",
        help="what compose needs from the file (ports, image store), as VAR=value lines "
        "(systemd/fedcloud-compose)",
    ).set_defaults(func=cmd_config_env)
    render_cmd = commands.add_parser("render", help="write each service's config")
    render_cmd.add_argument(
        "--out", help=f"directory (default ${render.RENDER_DIR_ENV} or {render.DEFAULT_RENDER_DIR})"
    )
    render_cmd.set_defaults(func=cmd_render)
    serve = commands.add_parser("serve", help="run the scheduler and status page")
    serve.add_argument("--no-catch-up", action="store_true", help="do not run missed jobs")
    serve.set_defaults(func=cmd_serve)
    show = commands.add_parser("status", help="jobs and services")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_status)
    run = commands.add_parser("run", help="run one job now")
    run.add_argument("job")
    run.set_defaults(func=cmd_run)
    migrate_command.add_parser(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # APScheduler's own "Adding job"/"Scheduler started" lines at every start
    # are noise beside the one line per run (runlog.py).
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except loader.ConfigError as error:
        print(f"appliance: invalid configuration\n{error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
