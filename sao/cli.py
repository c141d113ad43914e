"""The `sao` command line: one thin command per noun; the work lives in the modules."""

from __future__ import annotations

import functools
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from sao.cli_views import (
    err,
    out,
    print_iterated,
    print_judge_agreement,
    print_judge_eval,
    print_plan,
    print_preview,
    print_report,
    print_summary,
    print_trained,
)
from sao.errors import SaoError
from sao.interrupts import Terminated, dropped_on_resume, install

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Self-synthetic preference data: one model writes, answers and judges its own prompts.",
)
config_app = typer.Typer(no_args_is_help=True, help="Write or inspect run configurations.")
app.add_typer(config_app, name="config")


def user_errors(fn):
    """Turn a SaoError into one line on stderr and a non-zero exit; Ctrl-C into exit 130 and
    SIGTERM into 143, each with the command that resumes."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SaoError as exc:
            print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)  # one line
            raise typer.Exit(exc.exit_code) from None
        except (KeyboardInterrupt, Terminated) as exc:
            name, code = ("SIGTERM", 143) if isinstance(exc, Terminated) else ("SIGINT", 130)
            if fn.__name__ == "generate" and "--preview" not in sys.argv:
                line = f"committed shards are kept; resume with: {resume_command()}"
            elif fn.__name__ == "iterate_cmd":
                line = f"finished stages are kept; resume with: {resume_command()}"
            elif fn.__name__ == "train_cmd":
                line = f"saved training checkpoints are kept; resume with: {resume_command()}"
            else:
                line = "nothing was left half-written"
            print(f"interrupted ({name}): {line}", file=sys.stderr)
            raise typer.Exit(code) from None

    return wrapper


def resume_command() -> str:
    """This invocation as a shell line; without `--overwrite` once it has removed the old run
    (it would remove this one's shards too)."""
    words = [Path(sys.argv[0]).name, *(a for a in sys.argv[1:] if a not in dropped_on_resume)]
    return shlex.join(words)


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
    engine: Annotated[str | None, typer.Option(help="auto, hf, vllm, openai or ray.")] = None,
    model: Annotated[
        str | None,
        typer.Option(help="smollm2-135m-instruct, a model folder, a hub id or a served name."),
    ] = None,
    samples: Annotated[
        int | None, typer.Option("--samples", "-k", help="Responses per prompt (K).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Run seed.")] = None,
    judge_mode: Annotated[
        str | None,
        typer.Option(help="pairwise-logprob (default), pairwise-text or rubric."),
    ] = None,
    judge_opponents: Annotated[
        int | None,
        typer.Option(help="Judge each answer against about N others; the rest is fitted."),
    ] = None,
    pair_strategy: Annotated[
        str | None,
        typer.Option(help="best-worst (default), all-above-margin or consistent-only."),
    ] = None,
    no_filters: Annotated[
        bool, typer.Option("--no-filters", help="Keep repeated prompts (no duplicate filters).")
    ] = False,
    no_personas: Annotated[
        bool,
        typer.Option("--no-personas", help="Ablation: the same prompt template with no persona."),
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the run already in --out.")
    ] = False,
    extend: Annotated[
        bool,
        typer.Option("--extend", help="Add personas (a larger -n) to the finished run in --out."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the resolved config and plan, then exit.")
    ] = False,
    preview: Annotated[
        int | None,
        typer.Option(
            min=1, help="Run the first N personas through every stage, print them, write nothing."
        ),
    ] = None,
) -> None:
    """Generate a preference dataset. Example: sao generate --personas 64 --out runs/first"""
    if overwrite and extend:
        raise SaoError("--overwrite and --extend exclude each other: pick one")
    if preview is not None and (dry_run or overwrite or extend):
        raise SaoError("--preview writes nothing: it goes without --dry-run, --overwrite, --extend")
    from sao.config import FilterConfig, load_config
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
            "judge.mode": judge_mode,
            "judge.opponents": judge_opponents,
            "pairs.strategy": pair_strategy,
            "personas.enabled": False if no_personas else None,
        },
    )
    if no_filters:
        cfg = cfg.model_copy(
            update={"filters": FilterConfig(exact=False, near_duplicate=None, rouge_l=None)}
        )
    if preview is not None:
        from sao.preview import preview as show

        print_preview(show(cfg, preview, err))
        return
    mode = "overwrite" if overwrite else "extend" if extend else "resume"
    result = run(cfg, err, dry_run=dry_run, mode=mode)
    if dry_run:
        print_plan(result)
    else:
        print_summary(result, cfg.output.dir)


@app.command("train")
@user_errors
def train_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A `sao generate` output folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint folder to write.")],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML file with a `train:` section.")
    ] = None,
    algo: Annotated[
        str | None, typer.Option(help="dpo, ipo, sppo-hard, simpo, kto or sppo.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model to train (default: the run's generator).")
    ] = None,
    ref: Annotated[
        str | None, typer.Option(help="Reference model π_ref (default: the trained model).")
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Replace a finished checkpoint or a training with other settings."
        ),
    ] = False,
) -> None:
    """Train on a run's pairs (TRL, or `train.command`). Example: sao train runs/first --out ckpt"""
    from sao.training import load_train_config, train

    cfg = load_train_config(config, {"train.algo": algo, "train.model": model, "train.ref": ref})
    result = train(run_dir, out, cfg, overwrite=overwrite)
    print_trained(result)


@app.command("iterate")
@user_errors
def iterate_cmd(
    config: Annotated[
        Path,
        typer.Option("--config", "-c", help="YAML: a run's keys, `train:` and `iterate:`."),
    ],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="The loop's folder.")],
    rounds: Annotated[int | None, typer.Option(min=1, help="Rounds (more extend a loop).")] = None,
) -> None:
    """Self-improvement rounds: generate, train, evaluate. Example: sao iterate -c it.yaml -o it"""
    from sao.rounds.config import load_iterate_config
    from sao.rounds.loop import iterate

    loaded = load_iterate_config(config, {"iterate.rounds": rounds})
    ledger = iterate(loaded, out_dir, err)
    print_iterated(out_dir, ledger)


@app.command("export")
@user_errors
def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A `sao generate` output folder.")],
    to: Annotated[str, typer.Option("--to", help="trl-dpo, trl-kto, sppo, sail, openrlhf or hf.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write.")],
    split_ratio: Annotated[
        float, typer.Option(help="Share of prompts held out for evaluation.")
    ] = 0.05,
    seed: Annotated[int, typer.Option(help="Seed of the train/held-out split.")] = 0,
    min_margin: Annotated[
        float | None, typer.Option(help="Drop pairs whose judge margin is below this.")
    ] = None,
    max_pairs_per_prompt: Annotated[
        int | None, typer.Option(min=1, help="Keep at most N pairs per prompt (widest first).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace a non-empty --out folder.")] = False,
) -> None:
    """Write a run's records in a trainer's format. Example: sao export out --to trl-dpo -o dpo"""
    from sao.adapters import ExportOptions, export, hint, write
    from sao.store import read_manifest

    options = ExportOptions(
        split_ratio=split_ratio,
        seed=seed,
        min_margin=min_margin,
        max_pairs_per_prompt=max_pairs_per_prompt,
    )
    manifest = read_manifest(run_dir)
    if manifest.get("status") != "complete":
        err.print(
            f"note: {run_dir} is not finished; exporting its "
            f"{len(manifest['shards'])} committed shards"
        )
    data = export(run_dir, to, options)
    written = write(data, to, out_dir, source=run_dir, options=options, force=force)
    rows = ", ".join(f"{name} {split.num_rows:,}" for name, split in data.items())
    out.print(f"wrote {to} to {written}: {rows} rows")
    out.print("train on it:")
    print(hint(to, written, manifest["model"]["path"], data))  # plain: exactly the text to copy


@app.command("report")
@user_errors
def report_cmd(
    run_dir: Annotated[
        Path, typer.Argument(help="A `sao generate` output folder, or a `sao iterate` one.")
    ],
    baseline: Annotated[
        Path | None, typer.Option(help="A second run shown beside it (e.g. --no-personas).")
    ] = None,
    html: Annotated[
        Path | None, typer.Option(help="HTML file to write (default RUN/report.html).")
    ] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="JSON file to write (default RUN/report.json).")
    ] = None,
    color_by: Annotated[
        str, typer.Option(help="Persona attribute that colours the embedding map.")
    ] = "life_stage",
    response_sample: Annotated[
        int, typer.Option(min=0, help="Responses embedded per run, seeded sample (0: all).")
    ] = 5000,
) -> None:
    """Diversity and judge report of a run, or a loop's per-round curves (an iterate folder).
    Example: sao report out --baseline out-nopersona"""
    from sao.report import write_report
    from sao.rounds import LEDGER_NAME

    if (run_dir / LEDGER_NAME).is_file():
        from sao.rounds.report import write_iterate_report

        if baseline is not None:
            raise SaoError("--baseline compares two runs; an iterate folder holds its own rounds")
        _, html_path, json_path = write_iterate_report(run_dir, html, json_file)
        out.print(f"report: {html_path}  numbers: {json_path}")
        return

    with err.status("reading the runs") as status:
        report, html_path, json_path = write_report(
            run_dir,
            baseline,
            html,
            json_file,
            color_by,
            progress=status.update,
            response_sample=response_sample,
        )
    print_report(report.data["runs"])
    out.print(f"report: {html_path}  numbers: {json_path}")


@app.command("verify")
@user_errors
def verify_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A `sao generate` output folder.")],
) -> None:
    """Check shards against the manifest (SHA-256, rows, schema, ids, matrices). Exit 1 on any."""
    from sao.verify import verify

    problems, checked = verify(run_dir)
    for problem in problems:
        print(f"problem: {problem}")
    if problems:
        print(f"FAILED: {len(problems)} problem(s) in {run_dir}")
        raise typer.Exit(1)
    print(f"ok: {checked['shards']} shards, {checked['records']} records in {run_dir}")


@app.command("judge-eval")
@user_errors
def judge_eval_cmd(
    probes: Annotated[
        str | None, typer.Argument(help="JSONL of probes (prompt, better, worse); default: shipped")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML config: model, engine, judge.")
    ] = None,
    engine: Annotated[str | None, typer.Option(help="auto, hf or vllm.")] = None,
    model: Annotated[str | None, typer.Option(help="Model alias, folder or hub id.")] = None,
    judge_model: Annotated[
        str | None,
        typer.Option(help="Evaluate this model as the judge (else judge.model, else the model)."),
    ] = None,
    modes: Annotated[
        str,
        typer.Option(
            help="Comma-separated: single-order, pairwise-logprob, pairwise-text, rubric."
        ),
    ] = ",".join(("single-order", "pairwise-logprob", "pairwise-text", "rubric")),
    limit: Annotated[int | None, typer.Option(min=1, help="Use only the first N probes.")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the results here.")
    ] = None,
) -> None:
    """Measure each judge mode on probes with a known better answer. Example: sao judge-eval"""

    from sao.config import load_config
    from sao.engines import make_engine, resolve_engine_name
    from sao.engines.guard import GuardedEngine, failures_as_one_line
    from sao.judge_eval import MODES, bundled_probes, evaluate, load_probes
    from sao.models import resolve_model
    from sao.preflight import check_verdict_first

    chosen = [m.strip() for m in modes.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in MODES]
    if unknown or not chosen:
        raise SaoError(
            f"unknown judge mode {unknown[0] if unknown else '(none)'}; use {', '.join(MODES)}"
        )
    cfg = load_config(config, {"engine.name": engine, "model": model, "judge.model": judge_model})
    items = load_probes(probes or bundled_probes())[:limit]
    resolved = resolve_model(cfg.judge.model or cfg.model)
    engine_cfg = cfg.judge_engine() if cfg.judge.model else cfg.engine
    name = resolve_engine_name(engine_cfg.name)
    with err.status(f"loading {resolved.name} on engine {name}"):
        backend = GuardedEngine(make_engine(engine_cfg, resolved.path, cfg.seed, resolved.revision))
    try:
        with (
            failures_as_one_line("judge-eval"),
            err.status(f"judging {len(items)} probes in {len(chosen)} modes"),
        ):
            if {"single-order", "pairwise-logprob", "rubric"} & set(chosen):
                logprob = {"mode": "pairwise-logprob", "template": None}
                if cfg.judge.mode == "pairwise-logprob":
                    logprob["template"] = cfg.judge.template  # its own template, as evaluate does
                reads_labels = cfg.model_copy(
                    update={"judge": cfg.judge.model_copy(update=logprob)}
                )
                check_verdict_first(backend, reads_labels, resolved.name)
            result = evaluate(backend, items, cfg.judge, chosen, cfg.reasoning.markers)
    finally:
        backend.close()
    result.update(model=resolved.name, engine=name)
    print_judge_eval(result)
    if json_out is not None:
        write_json(json_out, result)


@app.command("judge-agreement")
@user_errors
def judge_agreement_cmd(
    run: Annotated[Path, typer.Argument(help="A sao output folder.")],
    judge_model: Annotated[
        str, typer.Option(help="The other judge: alias, local folder or hub id.")
    ],
    engine: Annotated[
        str | None, typer.Option(help="auto, hf or vllm (default: the run's).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Use only the first N records.")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the results here.")
    ] = None,
) -> None:
    """Re-judge a run's answers with another model; report agreement, P correlation and
    self-preference. Example: sao judge-agreement out --judge-model ./other-model"""

    from pydantic import ValidationError

    from sao.config import RunConfig
    from sao.engines import make_engine, resolve_engine_name
    from sao.engines.guard import GuardedEngine, failures_as_one_line
    from sao.judge_agreement import compare, rejudge
    from sao.model_digest import folder_digest
    from sao.models import resolve_model
    from sao.preflight import check_verdict_first
    from sao.store import read_manifest, read_records

    manifest = read_manifest(run)
    settings = {**manifest["config"], "output": {}}
    if engine is not None:
        settings["engine"] = {**settings["engine"], "name": engine}
    try:
        cfg = RunConfig.model_validate(settings)
    except ValidationError:
        raise SaoError(f"unknown engine '{engine}': choose auto, hf or vllm") from None
    records = read_records(run).to_pylist()[:limit]
    if not records:
        raise SaoError(f"{run} holds no records to judge")
    ran = manifest.get("judge_model") or manifest["model"]
    name = resolve_engine_name(cfg.engine.name)
    if name in ("openai", "ray"):
        raise SaoError("judge-agreement loads both judges here: use --engine hf or vllm")
    if ran.get("digest") and folder_digest(ran["path"]) != ran["digest"]:
        raise SaoError(
            f"the run's judge {ran['name']} has other weights now than when it judged the run "
            f"(digest of {ran['path']} changed): its verdicts cannot be reproduced"
        )
    other = resolve_model(judge_model)
    engines = []
    try:
        ran_on = cfg.judge_engine() if cfg.judge.model else cfg.engine  # as the run judged...
        ran_on = ran_on.model_copy(update={"name": cfg.engine.name})  # ...on this engine
        for label, path, revision, settings in (
            (ran["name"], ran["path"], ran.get("revision"), ran_on),
            (other.name, other.path, other.revision, cfg.engine),
        ):
            with err.status(f"loading {label} on engine {name}"):
                engines.append(GuardedEngine(make_engine(settings, path, cfg.seed, revision)))
        with (
            failures_as_one_line("judge-agreement"),
            err.status(f"judging {len(records)} records with {other.name}"),
        ):
            check_verdict_first(engines[1], cfg, other.name)
            result = compare(records, rejudge(cfg, records, *engines), cfg.judge.tie_band)
    finally:
        for backend in engines:
            backend.close()
    result.update(run_judge=ran["name"], other_judge=other.name, engine=name, mode=cfg.judge.mode)
    print_judge_agreement(result)
    if json_out is not None:
        write_json(json_out, result)


def write_json(path: Path, result: dict[str, Any]) -> None:
    """A command's results as JSON at `path`; an unwritable path is one line."""
    import json

    from sao.store import write_checked

    write_checked(path, (json.dumps(result, indent=2) + "\n").encode("utf-8"))
    out.print(f"wrote {path}")


@config_app.command("init")
@user_errors
def config_init(
    path: Annotated[Path, typer.Argument(help="Where to write the example config.")] = Path(
        "sao.yaml"
    ),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
    preset: Annotated[
        str | None,
        typer.Option(help="A commented config for a setup: gpu-8b, node-70b or ray-8b."),
    ] = None,
) -> None:
    """Write a commented example config. Example: sao config init sao.yaml --preset gpu-8b"""
    from sao.config import example_yaml, preset_yaml

    if path.exists() and not force:
        raise SaoError(f"{path} exists; pass --force to overwrite it")
    from sao.store import write_checked

    text = preset_yaml(preset) if preset is not None else example_yaml()
    write_checked(path, text.encode("utf-8"))
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
    """Console-script entry point: SIGTERM unwinds like Ctrl-C (exit 143)."""
    install()
    try:
        app()
    except Terminated:  # outside a command (start-up): nothing to keep
        sys.exit(143)


if __name__ == "__main__":
    main()
