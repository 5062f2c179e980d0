"""GlanceSync's decisions as pure functions (the e2e tests check Glance's state)."""

from __future__ import annotations

import pytest

from fedcloud_common.settings.glancesync import Policy
from fedcloud_glancesync.images import Image
from fedcloud_glancesync.plan import plan_region, select

MD5 = {c: c * 32 for c in "abcdef"}


def img(name: str, md5: str, owner: str = "p", visibility: str = "public", size: int = 1,
        **props: str) -> Image:  # fmt: skip
    return Image(f"{name}-{md5[:1]}-{owner}", name, "active", size, md5, None, owner, visibility,
                 props)  # fmt: skip


def policy(**values: object) -> Policy:
    return Policy.model_validate(values)


@pytest.mark.parametrize(
    ("conflicts", "status"),
    [
        ({}, "error_checksum"),
        ({"dontupdate": [MD5["b"]], "rename": ["any"]}, "ok_stalled_checksum"),
        ({"rename": [MD5["b"]], "replace": [MD5["b"]]}, "pending_rename"),
        ({"replace": [MD5["b"]], "rename": ["any"]}, "pending_replace"),
        ({"replace": ["any"], "rename": ["any"]}, "pending_replace"),
        ({"rename": ["any"]}, "pending_rename"),
        ({"rename": [MD5["c"]]}, "error_checksum"),
    ],
)
def test_conflicts_follow_glancesyncs_order(conflicts: dict[str, list[str]], status: str) -> None:
    master = img("x", MD5["a"])
    plan = plan_region("R", [master], [master], [img("x", MD5["b"])], "p",
                       policy(conflicts=conflicts))  # fmt: skip
    assert [d.status for d in plan.decisions] == [status]


def test_uploads_go_smallest_first_and_sha512_wins_over_md5() -> None:
    big, small = img("big", MD5["a"], size=9), img("small", MD5["b"], size=2)
    same_md5_other_sha = Image("t", "mid", "active", 5, MD5["c"], "1" * 128, "p", "public", {})
    mid = Image("m", "mid", "active", 5, MD5["c"], "2" * 128, "p", "public", {})
    plan = plan_region("R", [big, mid, small], [big, mid, small], [same_md5_other_sha], "p",
                       policy(conflicts={"replace": ["any"]}))  # fmt: skip
    assert [(d.master.name, d.status) for d in plan.uploads()] == [
        ("small", "pending_upload"),
        ("mid", "pending_replace"),
        ("big", "pending_upload"),
    ]


def test_selection_default_forcesyncs_duplicates_and_obsolete() -> None:
    images = [
        img("pub-marked", MD5["a"], nid="1"),
        img("pub-unmarked", MD5["b"]),
        img("priv-marked", MD5["c"], visibility="private", nid="1"),
        img("twin", MD5["d"], nid="1"),
        img("twin", MD5["e"], nid="1"),
        img("gone_obsolete", MD5["f"], nid="1"),
    ]
    chosen, warnings = select(images, policy(selection={"metadata_set": ["nid"]}), "tag")
    assert [i.name for i in chosen] == ["pub-marked"]
    assert warnings and "twin" in warnings[0]
    forced = policy(selection={"metadata_set": ["nid"], "forcesyncs": [images[2].id]})
    assert [i.name for i in select(images, forced, "tag")[0]] == ["pub-marked", "priv-marked"]
    everything = policy()  # no metadata_set: every public image
    assert [i.name for i in select(images, everything, "tag")[0]] == ["pub-marked", "pub-unmarked"]


def test_metadata_only_updates_the_set_and_visibility() -> None:
    master = img("x", MD5["a"], visibility="private", nid="2", other="m")
    target = img("x", MD5["a"], nid="1", other="t", local="keep")
    plan = plan_region("R", [master], [master], [target], "p",
                       policy(selection={"metadata_set": ["nid"]}))  # fmt: skip
    decision = plan.decisions[0]
    assert (decision.status, decision.properties, decision.visibility) == (
        "pending_metadata",
        {"nid": "2"},
        "private",
    )


def test_obsolete_is_not_propagated_to_another_projects_public_image() -> None:
    master = img("x_obsolete", MD5["a"], visibility="private")
    theirs = img("x", MD5["a"], owner="other")
    ours = img("x", MD5["a"])
    lenient = policy(only_tenant_images=False)
    assert plan_region("R", [], [master], [theirs], "p", lenient).obsolete == []
    [update] = plan_region("R", [], [master], [ours], "p", lenient).obsolete
    assert (update.name, update.visibility) == ("x_obsolete", "private")
