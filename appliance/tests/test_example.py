"""appliance.example.yaml is what the models generate, and it is a valid config."""

from pathlib import Path

from fedcloud_appliance import loader
from fedcloud_appliance.config import ApplianceConfig
from fedcloud_appliance.config.example import _model_of, generate, typical_site

EXAMPLE = Path(__file__).resolve().parents[1] / "etc" / "appliance.example.yaml"


def test_the_committed_example_is_the_generated_one():
    assert EXAMPLE.read_text() == generate(), "run `make example` and commit the result"


def test_the_example_loads_as_the_typical_site_it_shows():
    assert loader.load(EXAMPLE, check_files=False) == typical_site()


def test_every_key_of_every_section_appears_in_the_example():
    text = generate()

    def keys(model):
        for name, field in model.model_fields.items():
            yield name
            inner = _model_of(field.annotation)
            if inner is not None:
                yield from keys(inner)

    missing = [key for key in keys(ApplianceConfig) if f"{key}:" not in text]
    assert missing == []
