"""The `sao` command line: one thin command per noun; the work lives in the modules."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from sao.errors import SaoError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Self-synthetic preference data: one model writes, answers and judges its own prompts.",
)
config_app = typer.Typer(no_args_is_help=True, help="Write or inspect run configurations.")
app.add_typer(config_app, name="config")

out = Console()
err = Console(stderr=True)


def user_errors(fn):
    """Turn a SaoError into one line on stderr and a non-zero exit; Ctrl-C into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SaoError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            print(
                "interrupted: committed shards are kept; rerun the same command to resume",
                file=sys.stderr,
            )
            raise typer.Exit(130) from None

    return wrapper


@app.command()
@user_errors
def generate(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML config (see `sao config init`).")
    ] = None,
    out_dir: Annotated[str | None, typer.Option("--out", "-o", help="Output folder.")] = None,
    personas: Annotated[
        int | None, typer.Option("--personas", "-n", help="Number of personas to sample.")
    ] = None,
    persona_file: Annotated[
        str | None,
        typer.Option("--persona-file", help="JSONL with a `persona` field, or hf:<dataset>."),
    ] = None,
    engine: Annotated[str | None, typer.Option(help="auto, hf or vllm.")] = None,
    model: Annotated[
        str | None, typer.Option(help="smollm2-135m-instruct, a model folder or a hub id.")
    ] = None,
    samples: Annotated[
        int | None, typer.Option("--samples", "-k", help="Responses per prompt (K).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Run seed.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the resolved config and plan, then exit.")
    ] = False,
) -> None:
    """Generate a preference dataset. Example: sao generate --personas 64 --out runs/first"""
    from sao.config import load_config
    from sao.pipeline import generate as run

    cfg = load_config(
        config,
        {
            "output.dir": out_dir,
            "personas.count": personas,
            "personas.source": persona_file,
            "engine.name": engine,
            "model": model,
            "responses.samples": samples,
            "seed": seed,
        },
    )
    result = run(cfg, err, dry_run=dry_run)
    if dry_run:
        _print_plan(result)
    else:
        _print_summary(result, cfg.output.dir)


def _print_plan(result: dict[str, Any]) -> None:
    out.print("[bold]resolved config[/bold]")
    out.print(yaml.safe_dump(result["config"], sort_keys=False).rstrip(), markup=False)
    plan = result["plan"]
    table = Table(title=f"plan: {plan['personas']} personas in {plan['shards']} shards")
    table.add_column("stage")
    table.add_column("engine calls", justify="right")
    table.add_column("generated tokens (at most)", justify="right")
    for stage, calls in plan["calls"].items():
        table.add_row(stage, f"{calls:,}", f"{plan['max_tokens'][stage]:,}")
    out.print(table)


def _print_summary(manifest: dict[str, Any], out_dir: str) -> None:
    t = manifest["totals"]
    table = Table(title="sao generate: done")
    table.add_column("stage")
    table.add_column("tokens", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("throughput", justify="right")
    for stage in ("prompts", "responses", "judge"):
        tokens, secs = t["tokens"].get(stage, 0), t["wall_s"].get(stage, 0.0)
        unit = "calls/s" if stage == "judge" else "tok/s"
        table.add_row(
            stage, f"{tokens:,}", f"{secs:.1f}", f"{tokens / max(secs, 1e-9):,.0f} {unit}"
        )
    out.print(table)
    k = manifest["config"]["responses"]["samples"]
    out.print(
        f"{t['records']} records (K={k}), {t['pairs']} pairs, "
        f"{t['prompts_rejected']} of {t['personas']} personas without a usable prompt"
    )
    if t["prompt_rejections"]:
        rejected = sorted(t["prompt_rejections"].items())
        out.print("rejected prompt candidates: " + ", ".join(f"{k}={v}" for k, v in rejected))
    if t["flags"]:
        out.print("flags: " + ", ".join(f"{k}={v}" for k, v in sorted(t["flags"].items())))
    out.print(
        f"data: {Path(out_dir) / 'shard-*.arrow'}  manifest: {Path(out_dir) / 'manifest.json'}"
    )


@config_app.command("init")
@user_errors
def config_init(
    path: Annotated[Path, typer.Argument(help="Where to write the example config.")] = Path(
        "sao.yaml"
    ),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented example config. Example: sao config init sao.yaml"""
    from sao.config import example_yaml

    if path.exists() and not force:
        raise SaoError(f"{path} exists; pass --force to overwrite it")
    try:
        path.write_text(example_yaml(), encoding="utf-8")
    except OSError as exc:
        raise SaoError(f"cannot write {path}: {exc.strerror or exc}") from None
    out.print(f"wrote {path}")


@config_app.command("show")
@user_errors
def config_show(
    config: Annotated[Path | None, typer.Argument(help="YAML config to resolve.")] = None,
) -> None:
    """Print a config with every default filled in. Example: sao config show sao.yaml"""
    from sao.config import load_config

    out.print(yaml.safe_dump(load_config(config).model_dump(mode="json"), sort_keys=False))


@app.command("personas")
@user_errors
def personas_cmd(
    count: Annotated[int, typer.Argument(help="How many personas to show.")] = 5,
    source: Annotated[str, typer.Option(help="bundled, a JSONL file or hf:<dataset>.")] = "bundled",
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
) -> None:
    """Show a seeded sample of personas. Example: sao personas 3 --seed 7"""
    from sao.personas import load_personas, sample_personas

    pool = load_personas(source)
    for persona in sample_personas(pool, count, seed):
        out.print(f"[bold]{persona.id}[/bold] {persona.text}")
    out.print(f"({len(pool):,} personas in {source})")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
