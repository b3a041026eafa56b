"""The `kubevision` command line: a thin layer of click commands over the library.

Why one error boundary here: every command may be handed bad input, and a user must get a short,
specific message and exit code 1, never a traceback. Library code raises `KubevisionError` for
everything a user can fix; anything else is a bug in kubevision, reported as such in one line with a
hint to rerun with `--debug` (which shows the traceback for a bug report).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from kubevision import __version__
from kubevision.api.errors import KubevisionError
from kubevision.cli_guard import guarded as _guarded

TASKS = (
    "image_classification",
    "image_classification_multilabel",
    "image_object_detection",
    "image_instance_segmentation",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kubevision")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def cli(debug: bool) -> None:
    """kubevision: AutoML for computer vision, on one machine or on Kubernetes."""


@cli.command()
@click.argument("job_file", type=click.Path(path_type=Path))
@click.option("--no-data-check", is_flag=True, help="Skip checking that the data paths exist.")
@_guarded
def validate(job_file: Path, no_data_check: bool) -> None:
    """Validate a job YAML (schema, rules, data paths) and print a short plan."""
    from kubevision.api import describe, load_manifest
    from kubevision.api.models import AutoMLImageJob

    resource = load_manifest(job_file)
    if isinstance(resource, AutoMLImageJob) and not no_data_check:
        from kubevision.data import check_job_data_paths

        check_job_data_paths(resource, base_dir=job_file.resolve().parent, job_file=str(job_file))
    click.echo(f"{job_file}: valid {resource.kind}")
    click.echo(describe(resource))


@cli.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("crds"), show_default=True)
@click.option("--check", is_flag=True, help="Do not write; exit 1 if the files on disk differ (CI drift check).")
@_guarded
def crds(out_dir: Path, check: bool) -> None:
    """Write the CustomResourceDefinitions generated from the API models."""
    from kubevision.api.crds import render_crds

    files = render_crds()
    drift = []
    for name, text in files.items():
        target = out_dir / name
        if check:
            if not target.exists() or target.read_text() != text:
                drift.append(str(target))
        else:
            out_dir.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            click.echo(f"wrote {target}")
    if check:
        stale = sorted(p.name for p in out_dir.glob("*.yaml") if p.name not in files) if out_dir.exists() else []
        drift += [str(out_dir / n) for n in stale]
        if drift:
            raise KubevisionError(
                "CRDs are out of date with the API models; run `kubevision crds --out "
                f"{out_dir}`:", [_problem(p) for p in drift]
            )
        click.echo(f"{out_dir}: CRDs up to date ({len(files)} files)")


def _problem(path: str) -> Any:
    from kubevision.api.errors import Problem

    return Problem("differs from the generated CRD", file=path)


@cli.command("import-azure")
@click.argument("azure_job", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out_file", type=click.Path(path_type=Path), help="Write here instead of stdout.")
@click.option("--name", help="metadata.name of the job (default: the Azure job's name or the file stem).")
@_guarded
def import_azure(azure_job: Path, out_file: Path | None, name: str | None) -> None:
    """Convert an Azure ML CLI v2 AutoML image job file into an AutoMLImageJob YAML."""
    from kubevision.api.azure_import import import_azure_job, to_yaml

    manifest, notes = import_azure_job(azure_job, name=name)
    text = to_yaml(manifest)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    if out_file:
        out_file.write_text(text)
        click.echo(f"wrote {out_file}", err=True)
    else:
        click.echo(text, nl=False)


@cli.group()
def data() -> None:
    """Inspect labelled image data."""


@data.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--task", type=click.Choice(TASKS), required=True)
@click.option("--target-column", default="label", show_default=True)
@click.option("--max-errors", default=50, show_default=True, help="How many errors to print.")
@_guarded
def data_check(path: Path, task: str, target_column: str, max_errors: int) -> None:
    """Validate every line of a JSONL file or MLTable folder and print a summary."""
    from kubevision.data.check import check_dataset

    report = check_dataset(path, task=task, target_column=target_column)
    click.echo(report.render(max_errors=max_errors))
    if not report.ok:
        sys.exit(1)


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--from", "from_format", required=True,
              type=click.Choice(["coco", "voc", "yolo", "folders", "csv", "jsonl"]))
@click.option("--to", "to_format", required=True, type=click.Choice(["jsonl", "coco"]))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Output file.")
@click.option("--images", type=click.Path(path_type=Path), help="Folder of the images (when not implied).")
@click.option("--masks", type=click.Path(path_type=Path), help="VOC: folder of instance-mask PNGs.")
@click.option("--classes", type=click.Path(path_type=Path), help="YOLO: classes.txt or data.yaml.")
@click.option("--base-url", help="Prefix image_url with this instead of a path relative to --out.")
@click.option("--task", type=click.Choice(TASKS), help="Force the task (default: inferred).")
@_guarded
def convert(source: Path, from_format: str, to_format: str, out: Path, images: Path | None,
            masks: Path | None, classes: Path | None, base_url: str | None, task: str | None) -> None:
    """Convert COCO, Pascal VOC, YOLO, class folders or CSV to JSONL, and JSONL to COCO."""
    from kubevision.data.convert import convert as run_convert

    summary = run_convert(from_format, to_format, source, out, images=images, masks=masks,
                          classes=classes, base_url=base_url, task=task)
    click.echo(str(summary))


@cli.group()
def datasets() -> None:
    """Write small real datasets (bundled with installed packages; nothing is downloaded)."""


@datasets.command("digits")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("data/digits"), show_default=True)
@click.option("--multilabel", is_flag=True, help="2x2 mosaics of digits labelled with the digits present.")
@click.option("--seed", default=0, show_default=True)
@_guarded
def datasets_digits(out_dir: Path, multilabel: bool, seed: int) -> None:
    """scikit-learn's 1,797 real 8x8 handwritten digits as PNG files with train/val JSONL."""
    from kubevision.data.datasets import write_digits

    summary = write_digits(out_dir, multilabel=multilabel, seed=seed)
    click.echo(str(summary))


@cli.command()
@click.option("--trial-config", type=click.Path(path_type=Path), help="Trial config JSON (written by a runner).")
@click.option("--job", "job_file", type=click.Path(path_type=Path), help="Job YAML (instead of --trial-config).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="With --job: a hyperparameter value for this trial (camelCase name), repeatable.")
@click.option("--output", "output_dir", help="The trial's output folder, or an object-store URI (s3://, gs://, "
              "az://, file://) synced from a local staging folder ($KUBEVISION_STAGING).")
@click.option("--checkpoint", help="Start from an earlier model.pt / mlflow-model folder (a path or a URI).")
@click.option("--trial-name", default="trial", show_default=True)
@click.option("--no-onnx", is_flag=True, help="Skip the ONNX export (the MLflow model is always written).")
@click.option("--termination-url", help="Early-termination decision endpoint (bearer token from the environment "
              "variable KUBEVISION_TERMINATION_TOKEN).")
@click.option("--sampled-from", type=click.Path(path_type=Path),
              help="With --job: a JSON list of hyperparameter objects (an AutoMode portfolio); see --sampled-index.")
@click.option("--sampled-index", type=int, help="Which entry of --sampled-from this trial uses (--set overrides it).")
@_guarded
def train(trial_config: Path | None, job_file: Path | None, sets: tuple[str, ...], output_dir: str | None,
          checkpoint: str | None, trial_name: str, no_onnx: bool, termination_url: str | None,
          sampled_from: Path | None, sampled_index: int | None) -> None:
    """Run one trial: train, validate, checkpoint, export (run it under torchrun for several processes)."""
    from kubevision.trainer.entry import check_trial_data, config_from_cli

    config = config_from_cli(trial_config=trial_config, job_file=job_file, sets=sets, output_dir=output_dir,
                             checkpoint=checkpoint, trial_name=trial_name, termination_url=termination_url,
                             sampled_from=sampled_from, sampled_index=sampled_index)
    check_trial_data(config, str(trial_config or job_file))
    from kubevision.trainer.train import run_trial  # torch: only once the arguments and data paths are known good

    if no_onnx:
        config = config.model_copy(update={"runtime": config.runtime.model_copy(update={"export_onnx": False})})
    sys.exit(run_trial(config))


@cli.command()
@click.option("--model", "model_dir", required=True, type=click.Path(path_type=Path),
              help="An mlflow-model folder (or a trial's outputs folder).")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_file", type=click.Path(path_type=Path), help="Write JSON lines here instead of stdout.")
@click.option("--batch-size", default=16, show_default=True)
@_guarded
def predict(model_dir: Path, images: tuple[Path, ...], out_file: Path | None, batch_size: int) -> None:
    """Score images with a trained model; one JSON line per image, in the Azure response format."""
    from kubevision.trainer.predict import run_predict

    count = run_predict(model_dir, list(images), out_file=out_file, batch_size=batch_size)
    if out_file:
        click.echo(f"wrote {count} predictions to {out_file}", err=True)


def _register_commands() -> None:
    """Commands that live in their own modules (one module per command family keeps cli.py small)."""
    import importlib

    for module in ("kubevision.cli_run", "kubevision.cli_plan", "kubevision.cli_operator"):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            continue
        for command in getattr(mod, "COMMANDS", ()):
            cli.add_command(command)


_register_commands()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="kubevision")


if __name__ == "__main__":
    main()
