"""The shipped GLUE 2.1 schema: loads into Debian's slapd and checks entries."""

from __future__ import annotations

import subprocess

import ldap
import pytest

from fedcloud_bdii.schema import ARC, Schema, SchemaViolationError, schema_path


def test_shipped_schema_file_is_the_rendered_schema():
    assert schema_path().read_text() == Schema().render()


def test_every_class_and_attribute_sits_under_the_glue2_arc_without_clashes():
    schema = Schema()
    oids = [a.oid for a in schema.attributes.values()] + [c.oid for c in schema.classes.values()]
    assert all(oid.startswith(ARC + ".") for oid in oids)
    assert len(oids) == len(set(oids))
    # GLUE 2.0 core keeps its published OIDs; the cloud classes start at 100.
    assert schema.classes["glue2service"].oid == f"{ARC}.8"
    assert schema.classes["glue2location"].oid == f"{ARC}.3"
    assert schema.attributes["glue2contactdetail"].oid == f"{ARC}.4.2"
    assert schema.classes["glue2cloudcomputingimage"].oid == f"{ARC}.104"


def test_slapd_loads_the_schema_and_accepts_every_cloud_class(resource):
    _layout, updater = resource
    updater.ensure_suffix()
    conn = updater.conn
    for name in [
        "GLUE2CloudComputingService",
        "GLUE2CloudComputingManager",
        "GLUE2CloudComputingEndpoint",
        "GLUE2CloudComputingShare",
        "GLUE2CloudComputingImage",
        "GLUE2CloudComputingInstanceType",
        "GLUE2CloudComputingVirtualAccelerator",
        "GLUE2MappingPolicy",
        "GLUE2AccessPolicy",
        "GLUE2Location",  # the site's own, published by the site BDII
        "GLUE2Contact",
    ]:
        # slapd answers from its own subschema: the class is really loaded.
        result = conn.search_s(
            "cn=Subschema", ldap.SCOPE_BASE, "(objectClass=*)", ["objectClasses"]
        )
        classes = b"\n".join(result[0][1]["objectClasses"]).decode()
        assert f"NAME '{name}'" in classes


def test_slapd_rejects_what_the_validator_rejects(resource):
    _layout, updater = resource
    updater.ensure_suffix()
    bad = {
        "objectClass": [b"GLUE2CloudComputingInstanceType"],
        "GLUE2CloudComputingInstanceTypeID": [b"f1"],
        "GLUE2CloudComputingInstanceTypeRAM": [b"lots"],
    }
    with pytest.raises(SchemaViolationError, match="integer"):
        Schema().validate("GLUE2CloudComputingInstanceTypeID=f1,o=glue", bad)
    with pytest.raises(ldap.INVALID_SYNTAX):
        updater.conn.add_s("GLUE2CloudComputingInstanceTypeID=f1,o=glue", list(bad.items()))


@pytest.mark.parametrize(
    ("attrs", "problem"),
    [
        ({"objectClass": [b"GLUE2Share"], "GLUE2ShareID": [b"s"]}, "missing required"),
        (
            {"objectClass": [b"GLUE2Group"], "GLUE2GroupID": [b"s"], "GLUE2ShareID": [b"x"]},
            "not allowed",
        ),
        ({"objectClass": [b"GLUE2Group"], "GLUE2GroupID": [b"s", b"t"]}, "single-valued"),
        ({"objectClass": [b"GLUE2Nope"], "GLUE2GroupID": [b"s"]}, "unknown"),
        ({"objectClass": [b"GLUE2Group"], "GLUE2GroupID": [b"other"]}, "naming value"),
    ],
)
def test_validator_names_the_problem(attrs, problem):
    dn = f"{next(k for k in attrs if k != 'objectClass')}=s,o=glue"
    with pytest.raises(SchemaViolationError, match=problem):
        Schema().validate(dn, attrs)


def test_slaptest_converts_the_schema_to_cn_config(tmp_path):
    """Sites using cn=config (slapd.d) can load the same file."""
    conf = tmp_path / "slapd.conf"
    conf.write_text(f"include /etc/ldap/schema/core.schema\ninclude {schema_path()}\n")
    (tmp_path / "slapd.d").mkdir()
    subprocess.run(["slaptest", "-Q", "-f", str(conf), "-F", str(tmp_path / "slapd.d")], check=True)
    converted = "".join(p.read_text() for p in (tmp_path / "slapd.d").rglob("*glue21*.ldif"))
    assert "GLUE2CloudComputingInstanceType" in converted


def test_the_shipped_infosys_schema_is_the_rendered_one():
    from fedcloud_bdii import infosys

    assert infosys.schema_path().read_text() == infosys.render_schema()
