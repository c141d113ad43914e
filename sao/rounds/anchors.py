"""The anchor prompts: written once by the starting model from personas no round trains on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sao.config import RunConfig
from sao.engines.base import Engine
from sao.errors import SaoError
from sao.personas import choose_personas
from sao.seeds import stage_seed
from sao.stages import conversation, prompts
from sao.store import write_checked
from sao.templates import Template

ANCHORS_NAME = "anchors.jsonl"


def anchor_config(run: RunConfig, count: int) -> RunConfig:
    """The run's config narrowed to the anchor personas: the first `count` of the seeded draw
    (each round's slice starts after them)."""
    data = run.model_dump()
    data["personas"].update(count=count, skip=0)
    return RunConfig.model_validate(data)


def write_anchors(run: RunConfig, count: int, engine: Engine, path: Path) -> list[dict[str, Any]]:
    """Synthesize one prompt per anchor persona with the run's prompt settings; keep the clean
    ones as the conversations every round's policy answers."""
    personas, _ = choose_personas(anchor_config(run, count))
    results = prompts.synthesize(
        engine,
        personas,
        Template(run.prompts.template),
        run.prompts,
        stage_seed(run.seed, 0, "iterate-anchors"),
        markers=run.reasoning.markers,
    )
    anchors = [
        {
            "persona_id": persona.id,
            "persona": persona.text,
            "prompt": conversation(run.responses.system, {"role": "user", "content": kept.prompt}),
        }
        for persona, kept in zip(personas, results, strict=True)
        if kept.prompt is not None
    ]
    if not anchors:
        raise SaoError(
            f"none of the {count} anchor personas gave a usable prompt; raise iterate.anchors "
            "or prompts.candidates"
        )
    lines = "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in anchors)
    write_checked(path, lines.encode())
    return anchors


def read_anchors(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
