"""bdii.vo_map_file: the voms.json a site already keeps, read at load, merged, rendered."""

import json
import logging
import os

import pytest

from fedcloud_appliance import loader, render
from tests.support.applianceconfig import MINIMAL, write_password

BASE = MINIMAL + "bdii:\n  vo_map_file: VOMS_JSON\n"

LISTS = """
images:
  endorser: {dn: /CN=endorser, ca: /CN=ca}
  lists:
    - {name: by-map, url: 'https://lists.test/a', vo: fedcloud.egi.eu}
    - {name: own, url: 'https://lists.test/b', vo: fedcloud.egi.eu, project: own-project}
"""


@pytest.fixture
def site(tmp_path):
    """write(vo_map, extra) -> appliance.yaml, voms.json and a secret in tmp_path.

    ``extra`` continues the file after ``bdii.vo_map_file``: indented lines add
    to ``bdii``, others are new sections.
    """
    password = write_password(tmp_path)
    voms_json = tmp_path / "voms.json"

    def write(vo_map: object, extra: str = "") -> os.PathLike[str]:
        text = vo_map if isinstance(vo_map, str) else json.dumps(vo_map, indent=2)
        voms_json.write_text(text)
        path = tmp_path / "appliance.yaml"
        yaml_text = BASE.replace("PASSWORD", str(password)).replace("VOMS_JSON", str(voms_json))
        path.write_text(yaml_text + extra)
        return path

    return write


def problems(path) -> list[str]:
    with pytest.raises(loader.ConfigError) as error:
        loader.load(path)
    return error.value.problems


def test_keystone_voms_tenants_become_the_published_vos(site):
    config = loader.load(
        site(
            {
                "fedcloud.egi.eu": {"tenant": "vo-fedcloud"},
                "dteam": {"tenant": "dteam-project", "roles": ["member"]},
            }
        )
    )
    assert config.bdii.projects() == {"fedcloud.egi.eu": "vo-fedcloud", "dteam": "dteam-project"}


def test_fqan_entries_map_a_vo_group_not_a_vo_and_are_skipped(site):
    config = loader.load(
        site({"dteam": {"tenant": "dteam"}, "/dteam/NGI_IBERGRID": {"tenant": "dteam_ibergrid"}})
    )
    assert config.bdii.projects() == {"dteam": "dteam"}


def test_caso_projects_lists_are_read_and_the_first_project_is_used(site, caplog):
    path = site(
        {
            "fedcloud.egi.eu": {"projects": ["vo-fedcloud"]},
            "biomed": {"projects": ["biomed-a", "biomed-b"]},
            "old.vo": {"tenants": ["old-project"]},
        }
    )
    with caplog.at_level(logging.WARNING, logger="fedcloud_appliance.loader"):
        config = loader.load(path)
    assert config.bdii.projects() == {
        "fedcloud.egi.eu": "vo-fedcloud",
        "biomed": "biomed-a",
        "old.vo": "old-project",
    }
    (warning,) = caplog.messages
    assert warning.startswith("bdii.vo_map_file: VO 'biomed' has 2 projects (biomed-a, biomed-b)")
    assert "set bdii.vos.biomed.project" in warning


def test_appliance_yaml_wins_over_the_file_with_a_warning_when_they_differ(site, caplog):
    path = site(
        {
            "fedcloud.egi.eu": {"tenant": "from-file"},
            "biomed": {"projects": ["biomed-a", "biomed-b"]},
            "dteam": {"tenant": "dteam"},
        },
        "  vos:\n"
        "    fedcloud.egi.eu: {project: from-yaml}\n"
        "    biomed: {project: biomed-b}\n"
        "    yaml.only: {project: yaml-only}\n",
    )
    with caplog.at_level(logging.WARNING, logger="fedcloud_appliance.loader"):
        config = loader.load(path)
    assert config.bdii.projects() == {
        "fedcloud.egi.eu": "from-yaml",
        "biomed": "biomed-b",  # one of the file's: chosen, no warning
        "yaml.only": "yaml-only",
        "dteam": "dteam",
    }
    assert caplog.messages == [
        "bdii.vos.fedcloud.egi.eu: project 'from-yaml' is used, not 'from-file' from "
        "bdii.vo_map_file; make them agree to silence this warning"
    ]


def test_image_lists_with_a_vo_and_no_project_go_to_the_vos_project(site):
    config = loader.load(site({"fedcloud.egi.eu": {"tenant": "vo-fedcloud"}}, LISTS))
    rendered = render.cloudkeeper.cloudkeeper(config, lambda path: str(path) if path else None)
    projects = {lst.name: lst.project for lst in rendered.lists}
    assert projects == {"by-map": "vo-fedcloud", "own": "own-project"}
    # vmcatcher's events go to the VO's project too; a list's own project wins.
    assert rendered.vo_projects == {"fedcloud.egi.eu": "own-project"}


def test_the_bdii_renders_the_merged_map(site):
    config = loader.load(
        site(
            {"fedcloud.egi.eu": {"tenant": "vo-fedcloud"}, "dteam": {"tenant": "dteam"}},
            "  vos:\n    dteam: {project: dteam-yaml}\n",
        )
    )
    resource = render.bdii.bdii(config, lambda path: str(path) if path else None)["resource"]
    assert resource.vos == {"dteam": "dteam-yaml", "fedcloud.egi.eu": "vo-fedcloud"}


def test_the_file_is_not_read_when_no_service_uses_it(site):
    path = site("not json", "  enabled: false\nimages: {enabled: false}\n")
    assert loader.load(path).bdii.vos == {}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            '{\n  "fedcloud.egi.eu": {"tenant": "vo-fedcloud"},\n}\n',
            "bdii.vo_map_file: not valid JSON at line 3, column 1: Expecting property name "
            "enclosed in double quotes; fix the file (python3 -m json.tool shows where)",
        ),
        (
            "  \n",
            "bdii.vo_map_file: {path} is empty; write the map, e.g. "
            '{{"fedcloud.egi.eu": {{"tenant": "<project>"}}}}, or remove the key',
        ),
        (
            ["fedcloud.egi.eu"],
            "bdii.vo_map_file: must be a JSON object of VOs, e.g. "
            '{{"fedcloud.egi.eu": {{"tenant": "<project>"}}}}, not an array; fix the file',
        ),
        (
            {"fedcloud.egi.eu": "vo-fedcloud"},
            "bdii.vo_map_file: VO 'fedcloud.egi.eu': expected an object like "
            '{{"tenant": "<project>"}}, not a string; fix that entry',
        ),
        (
            {"fedcloud.egi.eu": {"tenant": ["vo-fedcloud"]}},
            "bdii.vo_map_file: VO 'fedcloud.egi.eu': \"tenant\" must be a project name or id, "
            "not ['vo-fedcloud']; fix that entry",
        ),
        (
            {"biomed": {"projects": "biomed-a"}},
            "bdii.vo_map_file: VO 'biomed': \"projects\" must be a list of project names or "
            "ids, not 'biomed-a'; fix that entry",
        ),
        (
            {"dteam": {"roles": ["member"]}},
            'bdii.vo_map_file: VO \'dteam\' names no project; give it "tenant": "<project>" '
            'or "projects": ["<project>", ...]',
        ),
    ],
    ids=[
        "invalid-json",
        "empty",
        "not-an-object",
        "entry-not-an-object",
        "tenant-not-a-string",
        "projects-not-a-list",
        "no-project",
    ],
)
def test_a_bad_file_is_named_with_the_problem_and_the_fix(site, tmp_path, content, expected):
    found = problems(site(content))
    assert found == [expected.format(path=tmp_path / "voms.json")]


def test_every_bad_entry_is_reported_with_the_other_problems(site, tmp_path):
    path = site({"a.vo": {"tenant": ""}, "b.vo": {"projects": []}, "ok.vo": {"tenant": "ok"}})
    os.chmod(tmp_path / "secrets" / "password", 0o644)
    found = problems(path)
    assert [p.split(":")[0] for p in found] == [
        "openstack",
        "bdii.vo_map_file",
        "bdii.vo_map_file",
    ]
    assert "VO 'a.vo'" in found[1] and "VO 'b.vo' names no project" in found[2]


def test_a_missing_file_says_where_the_containers_can_see_it(site, tmp_path):
    path = site({})
    (tmp_path / "voms.json").unlink()
    assert problems(path) == [
        f"bdii.vo_map_file: {tmp_path / 'voms.json'} does not exist; put the file in "
        f"{tmp_path}/, the host directory the appliance's containers mount, and point "
        "vo_map_file at it"
    ]
