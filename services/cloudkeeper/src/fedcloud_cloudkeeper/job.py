"""The periodic job: fetch, verify, download -- then hand the work to the backend.

``Job.sync`` reads as its steps: take the lock, then for each list fetch and
verify it, plan against Glance (read-only, one listing for all lists),
download what is new, and spool one request per list for cloudkeeper-os. A
list that fails to fetch or verify spools nothing, so it changes nothing in
Glance -- except retiring what its last trusted version says has expired.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import fcntl
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from fedcloud_cloudkeeper import adopt, fetch, formats
from fedcloud_cloudkeeper.config import Config, ListSource
from fedcloud_cloudkeeper.glance import Glance
from fedcloud_cloudkeeper.imagelist import ImageList
from fedcloud_cloudkeeper.plan import LIST_PROPERTY, Action, Managed, plan, targets
from fedcloud_cloudkeeper.spool import ReadyFile, RefusedRequestError, Spool, SyncList
from fedcloud_cloudkeeper.trust import TrustStore, verify_list
from fedcloud_common.errors import FedcloudError
from fedcloud_common.faults import explain
from fedcloud_common.imagestatus import ListStatus, StatusFiles
from fedcloud_common.secrets import read_secret

LOG = logging.getLogger(__name__)
# How long cleanup keeps a partial download for the next run to resume.
RESUMABLE_FOR_S = 7 * 24 * 3600


@dataclasses.dataclass
class ListOutcome:
    name: str
    state: str  # ok | error
    reason: str
    actions: list[Action] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    # The request spooled for cloudkeeper-os, whose result says what was applied.
    request_id: str | None = None


@dataclasses.dataclass
class Report:
    lists: list[ListOutcome]
    skipped: bool = False
    downloaded_bytes: int = 0  # image bytes received in this run

    @property
    def failed(self) -> bool:
        return any(o.state == "error" or o.errors for o in self.lists)

    def counts(self) -> dict[str, int]:
        counts = {"lists": len(self.lists), "lists_failed": 0}
        for verb in ("adopt", "add", "replace", "update", "retire", "keep"):
            counts[verb] = 0
        counts["errors"] = 0
        for outcome in self.lists:
            counts["lists_failed"] += outcome.state == "error"
            counts["errors"] += len(outcome.errors)
            for action in outcome.actions:
                if action.verb in counts:
                    counts[action.verb] += 1
        return counts


class Job:
    def __init__(
        self,
        config: Config,
        glance: Glance,
        http: requests.Session | None = None,
        clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self.config = config
        self.glance = glance
        self.http = http or fetch.session(config.https_verify)
        self.clock = clock
        self.trust = TrustStore(config.state_dir)
        self.spool = Spool(config.spool_dir)
        self._foreign: list[Managed] | None = None  # untagged images, listed once a run
        self.downloader = fetch.Downloader(
            self.http,
            timeout_s=config.timeout_s,
            retries=config.retries,
            backoff_s=config.backoff_s,
            reserve_bytes=config.reserve_bytes,
        )

    def sync(self, dry_run: bool = False, only: str | None = None) -> Report:
        """Lock, then fetch -> verify -> plan -> download -> spool, list by list."""
        with self._lock() as locked:
            if not locked:
                return Report([], skipped=True)
            if only is not None:
                self.config.source(only)  # an unknown name is an error, not "nothing to do"
            sources = [s for s in self.config.lists if s.enabled and only in (None, s.name)]
            managed = self._managed_by_list()
            outcomes = [self._sync_list(s, managed.get(s.name, []), dry_run) for s in sources]
            if not dry_run:
                self._record(outcomes)
            return Report(outcomes, downloaded_bytes=self.downloader.received)

    def verify(self, source: ListSource) -> ImageList:
        """Fetch and verify one list without recording anything."""
        trusted, _ = self._fetch_verified(source)
        return trusted

    def cleanup(self, dry_run: bool = False, retire_old: bool = False) -> Report:
        """Retire images of lists no longer configured; drop cache files nothing needs.

        The old tools' images for lists no longer subscribed are listed, and
        retired only with ``retire_old``: they may still be someone's.
        """
        with self._lock() as locked:
            if not locked:
                return Report([], skipped=True)
            configured = {s.name for s in self.config.lists if s.enabled}
            configured.add(self.config.vmcatcher_list)  # fed by events, not by configuration
            outcomes = []
            for name, images in sorted(self._managed_by_list().items()):
                if name in configured:
                    continue
                actions = plan(None, images, self.clock(), "list no longer subscribed")
                outcomes.append(ListOutcome(name, "ok", "unsubscribed", actions))
                if not dry_run:
                    outcomes[-1].request_id = self.spool.put(
                        SyncList(list=name, retire_reason="list no longer subscribed")
                    )
                    self.trust.forget(name)
            modes = {s.adopt for s in self.config.lists if s.adopt}
            if modes:
                outcomes += self._old_tools_orphans(modes, dry_run, retire_old)
            stale = self.stale_files()
            if stale:
                outcomes.append(
                    ListOutcome(
                        "(cache)", "ok", f"{len(stale)} stale file(s) in {self.config.cache_dir}"
                    )
                )
                for path in stale if not dry_run else []:
                    path.unlink(missing_ok=True)
            return Report(outcomes)

    def stale_files(self) -> list[Path]:
        """Cache files no pending request refers to: leftovers of crashed runs."""
        referenced: set[str] = set()
        for path in self.spool.pending():
            try:
                request = self.spool.load(path)
            except RefusedRequestError:
                continue  # the backend refuses it; its files are no longer wanted
            if isinstance(request, SyncList):
                referenced |= {ready.path for ready in request.files.values()}
        cache = Path(self.config.cache_dir)
        work = cache / "work"  # the backend's, possibly in use right now
        # A partial download the next run resumes, unless it is old.
        resumable_since = time.time() - RESUMABLE_FOR_S
        return sorted(
            path
            for path in cache.rglob("*")
            if path.is_file()
            and str(path) not in referenced
            and not path.is_relative_to(work)
            and not (
                path.name.endswith((".part", ".part.json"))
                and path.stat().st_mtime > resumable_since
            )
        )

    def _sync_list(self, source: ListSource, managed: list[Managed], dry_run: bool) -> ListOutcome:
        now = self.clock()
        try:
            trusted, content = self._fetch_verified(source)
        except FedcloudError as error:  # ours, and an unreadable token file
            LOG.error("%s", error)
            outcome = ListOutcome(source.name, "error", str(error))
            self._retire_expired(source, managed, outcome, dry_run, now)
            return outcome
        wanted = targets(trusted, source.name, source.project, self._prefix(source))
        adopted: list[Action] = []
        problems: list[str] = []
        if source.adopt:  # as the backend will find them once it adopted them
            adoption = adopt.match(
                source.adopt,
                source.name,
                trusted.identifier,
                wanted,
                managed,
                self.foreign(),
                self.glance.foreign(source.project) if source.project else [],
                source.project,
            )
            adopted, problems = adoption.actions(wanted), adoption.problems()
            managed = [*managed, *adoption.as_managed(wanted)]
            wanted = adoption.wanted(wanted)
        actions = adopted + plan(wanted, managed, now)
        outcome = ListOutcome(source.name, "ok", f"list {trusted.version} verified", actions)
        outcome.errors += problems
        if dry_run:
            return outcome
        self.trust.save(source.name, content)
        files, failed = self._download(
            source, [a for a in actions if a.verb in ("add", "replace")], outcome
        )
        if any(a.verb != "keep" for a in actions):
            outcome.request_id = self._spool_list(source, content, files, failed)
        return outcome

    def _spool_list(
        self,
        source: ListSource,
        content: bytes,
        files: dict[str, ReadyFile],
        download_errors: dict[str, str],
    ) -> str:
        """Hand one list's trusted content (and its new images) to cloudkeeper-os."""
        return self.spool.put(
            SyncList(
                list=source.name,
                content=content.decode(),
                project=source.project,
                prefix=self._prefix(source),
                files=files,
                download_errors=download_errors,
                adopt=source.adopt,
            )
        )

    def _fetch_verified(self, source: ListSource) -> tuple[ImageList, bytes]:
        token = source.token
        if source.token_file:
            token = read_secret(source.token_file).reveal()
        message = fetch.fetch_list(self.http, source.url, token, self.config.timeout_s)
        last = self.trust.load(source.name)
        return verify_list(message, source, self.config.ca_path, self.clock(), last)

    def _retire_expired(
        self,
        source: ListSource,
        managed: list[Managed],
        outcome: ListOutcome,
        dry_run: bool,
        now: datetime.datetime,
    ) -> None:
        """Expiry is judged on the last trusted list, whatever the server says today."""
        last = self.trust.load(source.name)
        if last is None:
            return
        if last.expired(now):
            actions = plan(None, managed, now, "list expired")
        else:
            actions = [
                a
                for a in plan(
                    targets(last, source.name, source.project, self._prefix(source)), managed, now
                )
                if a.verb == "retire" and a.reason == "image expired"
            ]
        if not actions:
            return
        outcome.actions = actions
        if not dry_run:
            outcome.request_id = self._spool_list(source, self.trust.content(source.name), {}, {})

    def _download(
        self, source: ListSource, actions: list[Action], outcome: ListOutcome
    ) -> tuple[dict[str, ReadyFile], dict[str, str]]:
        """Fetch, check and convert the new images, a few at a time.

        Returns the files ready for upload and, for each image that failed,
        why: the backend reports those as errors instead of "pending".
        """
        directory = self.config.cache_dir / source.name
        files: dict[str, ReadyFile] = {}
        failed: dict[str, str] = {}

        def one(action: Action) -> None:
            image = action.target.image
            target = directory / f"{image.identifier}-{image.content_digest[:16]}"
            path = self.downloader.download(
                image.identifier, image.uri, image.size, image.sha512, target
            )
            path, disk_format = formats.prepare(
                path, self.config.accepted_formats, image.identifier, declared=image.format
            )
            files[image.identifier] = ReadyFile(
                path=str(path),
                disk_format=disk_format,
                content_digest=image.content_digest,
                # What Glance must report after the upload; unknown once converted.
                sha512=image.sha512 if path.name == target.name else None,
            )

        workers = max(1, self.config.parallel_downloads)
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="ck-dl") as pool:
            futures = {pool.submit(one, action): action for action in actions}
            for future in concurrent.futures.as_completed(futures):
                error = future.exception()
                if error is not None:
                    reason = str(error) if isinstance(error, FedcloudError) else explain(error)
                    LOG.error("%s", reason)
                    outcome.errors.append(reason)
                    failed[futures[future].identifier] = reason
        return files, failed

    def foreign(self) -> list[Managed]:
        """Our project's untagged images (the old tools'), listed once a run."""
        if self._foreign is None:
            self._foreign = self.glance.foreign()
        return self._foreign

    def _old_tools_orphans(
        self, modes: set[str], dry_run: bool, retire_old: bool
    ) -> list[ListOutcome]:
        """The old tools' images for lists no longer subscribed, one outcome per list.

        cloudkeeper-os knew a list by its dc:identifier, which only a trusted
        copy tells: while a subscribed list was never synced, its images are
        not judged.
        """
        enabled = [s for s in self.config.lists if s.enabled]
        list_ids, unsynced = set(), []
        for source in enabled:
            last = self.trust.load(source.name)
            if last is None:
                unsynced.append(source.name)
            else:
                list_ids.add(last.identifier)
        found = adopt.orphans(modes, {s.name for s in enabled}, list_ids, self.foreign())
        outcomes = []
        if unsynced:
            found = [o for o in found if o.tool != "cloudkeeper-os"]
            if any(mode in ("cloudkeeper-os", "auto") for mode in modes):
                outcomes.append(
                    ListOutcome(
                        "(cloudkeeper-os)",
                        "ok",
                        f"its images not judged: {', '.join(unsynced)} never synced here",
                    )
                )
        groups: dict[str, list[adopt.Orphan]] = {}
        for orphan in found:
            groups.setdefault(f"{orphan.list} ({orphan.tool})", []).append(orphan)
        for name, orphans in groups.items():
            reason = f"placed by {orphans[0].tool} for a list no longer subscribed"
            verb = "retire" if retire_old else "leave"
            if not retire_old:
                reason += "; kept (cleanup --retire-old retires it)"
            actions = [Action(verb, o.identifier, reason, None, o.image) for o in orphans]
            outcome = ListOutcome(name, "ok", f"{len(orphans)} old image(s)", actions)
            if retire_old and not dry_run:
                outcome.request_id = self.spool.put(
                    SyncList(list=name, retire_old={o.image.id: reason for o in orphans})
                )
            outcomes.append(outcome)
        return outcomes

    def _managed_by_list(self) -> dict[str, list[Managed]]:
        grouped: dict[str, list[Managed]] = {}
        for image in self.glance.managed():
            grouped.setdefault(str(image.properties.get(LIST_PROPERTY, "")), []).append(image)
        return grouped

    def _prefix(self, source: ListSource) -> str:
        return self.config.name_prefix + source.prefix

    def _record(self, outcomes: list[ListOutcome]) -> None:
        when = self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        StatusFiles(self.config.state_dir).record_lists(
            {
                o.name: ListStatus(
                    state="error" if o.state == "error" else "ok",
                    reason=o.reason,
                    checked=when,
                    errors=o.errors,
                )
                for o in outcomes
            }
        )

    @contextmanager
    def _lock(self) -> Iterator[bool]:
        path = Path(self.config.state_dir) / "cloudkeeper.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
