"""Config loading, overrides, validation messages and the example config."""

import pytest
import yaml

from sao.config import RunConfig, diff_keys, example_yaml, load_config
from sao.errors import SaoError


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\nresponses:\n  samples: 6\npersonas:\n  count: 10\n")
    cfg = load_config(path, {"responses.samples": 5, "output.dir": "x", "seed": None})
    assert cfg.seed == 3  # None overrides nothing
    assert cfg.responses.samples == 5  # flag beats file
    assert cfg.personas.count == 10
    assert cfg.output.dir == "x"


def test_example_yaml_is_the_default_config():
    assert RunConfig.model_validate(yaml.safe_load(example_yaml())) == RunConfig()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("responses:\n  samples: 1\n", "responses.samples"),
        ("engine:\n  name: tpu\n", "engine.name"),
        ("bogus: 1\n", "unknown key 'bogus'"),
        ("seed: [1\n", "invalid YAML at line"),
        ("- 1\n- 2\n", "must be a mapping"),
        ("responses:\n  temperature: -1\n", "responses.temperature"),
    ],
)
def test_bad_configs_name_the_problem(tmp_path, text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SaoError) as info:
        load_config(path)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(SaoError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_data_hash_ignores_output_dir_only():
    a = RunConfig()
    assert a.data_hash() == RunConfig(output={"dir": "elsewhere"}).data_hash()
    assert a.data_hash() != RunConfig(seed=1).data_hash()
    assert diff_keys(a.data_dict(), RunConfig(seed=1, responses={"samples": 3}).data_dict()) == [
        "responses.samples",
        "seed",
    ]
