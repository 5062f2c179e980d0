"""appliance: check the config, run the supervisor, show status, run a job.

appliance config check      validate the config file and the files it names
appliance serve             run the scheduler and the status page
appliance status [--json]   last and next run of every job, service health
appliance run JOB           run one job now and wait for it
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from importlib.metadata import version
from pathlib import Path

import docker
import docker.errors

from fedcloud_appliance import jobs, loader, render, status, web
from fedcloud_appliance.config import ApplianceConfig
from fedcloud_appliance.docker_run import DockerRunner
from fedcloud_appliance.history import History
from fedcloud_appliance.scheduler import Supervisor

LOG = logging.getLogger("appliance")


def _supervisor(config: ApplianceConfig, client: docker.DockerClient | None) -> Supervisor:
    state = config.supervisor.state_dir
    runner = DockerRunner(client) if client else None

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


def cmd_status(args: argparse.Namespace) -> int:
    config = loader.load(args.config, check_files=False)
    report = status.collect(_supervisor(config, None), _docker(), _project())
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


def cmd_serve(args: argparse.Namespace) -> int:
    config = loader.load(args.config)
    rendered = render.render_all(config, _render_dir(args))
    LOG.info("rendered %s", ", ".join(p.name for p in rendered) or "nothing")
    client = _docker()
    supervisor = _supervisor(config, client)
    project = _project()
    server = web.serve(
        config.supervisor.status_port, lambda: status.collect(supervisor, client, project)
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
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
    config.add_parser("check", help="validate the config file").set_defaults(func=cmd_config_check)
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
    return root


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except loader.ConfigError as error:
        print(f"appliance: invalid configuration\n{error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
