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


def test_engine_args_are_hashed_only_where_they_change_the_samples():
    base = RunConfig().data_hash()
    how = {"vllm_args": {"tensor_parallel_size": 8, "max_num_seqs": 64}}
    how_hf = {"hf_args": {"device_map": "auto", "attn_implementation": "sdpa"}}
    assert RunConfig(engine=how).data_hash() == base
    assert RunConfig(engine=how_hf).data_hash() == base
    assert RunConfig(engine={"vllm_args": {"quantization": "fp8"}}).data_hash() != base
    assert RunConfig(engine={"vllm_args": {"kv_cache_dtype": "fp8"}}).data_hash() != base
    assert (
        RunConfig(engine={"hf_args": {"quantization_config": {"load_in_8bit": True}}}).data_hash()
        != base
    )


def test_a_judge_model_has_its_own_engine_over_the_generators():
    cfg = RunConfig(
        engine={"name": "vllm", "gpu_memory_utilization": 0.9, "vllm_args": {"max_num_seqs": 8}},
        judge={"model": "org/judge", "engine": {"gpu_memory_utilization": 0.4, "base_url": "x"}},
    )
    judge = cfg.judge_engine()
    assert (judge.name, judge.gpu_memory_utilization, judge.vllm_args) == (
        "vllm",
        0.4,
        {"max_num_seqs": 8},
    )
    assert cfg.engine.gpu_memory_utilization == 0.9
    assert cfg.data_dict()["judge"]["engine"] == {"gpu_memory_utilization": 0.4}  # base_url: how
    assert cfg.data_hash() != RunConfig(engine=cfg.engine).data_hash()


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"judge": {"engine": {"dtype": "float32"}}}, "set judge.model too"),
        ({"judge": {"model": "x", "engine": {"dtyp": "float32"}}}, "did you mean 'dtype'"),
        ({"judge": {"model": "x", "engine": {"dtype": "f8"}}}, "judge.engine.dtype"),
        ({"engine": {"vllm_args": {"seed": 3}}}, "vllm_args.seed: set seed instead"),
        ({"engine": {"hf_args": {"revision": "x"}}}, "hf_args.revision: set model instead"),
        ({"engine": {"hf_args": {"device_mapp": "auto"}}}, "did you mean 'device_map'"),
    ],
)
def test_bad_judge_and_engine_args_name_the_problem(settings, fragment):
    with pytest.raises(SaoError, match=fragment):
        load_config(None, {k: v for k, v in settings.items()})


@pytest.mark.parametrize("name", ["gpu-8b", "node-70b", "ray-8b"])
def test_presets_are_valid_commented_configs(name, tmp_path):
    from sao.config import preset_yaml

    path = tmp_path / "sao.yaml"
    path.write_text(preset_yaml(name))
    cfg = load_config(path)
    assert cfg.engine.name in ("vllm", "ray") and cfg.engine.dtype == "bfloat16"
    assert cfg.output.shard_size >= 1024 and "#" in path.read_text()
    tp = cfg.engine.vllm_args.get("tensor_parallel_size", 1)
    assert tp == (8 if name == "node-70b" else 1)
    assert (
        cfg.data_hash()
        == RunConfig.model_validate(
            {
                **yaml.safe_load(path.read_text()),
                "engine": {**cfg.engine.model_dump(), "vllm_args": {}},
            }
        ).data_hash()
    )  # the parallel and batching settings stay out of the hash


def test_unknown_preset_lists_the_presets():
    from sao.config import preset_yaml

    with pytest.raises(SaoError, match="choose gpu-8b, node-70b, ray-8b"):
        preset_yaml("tpu")
