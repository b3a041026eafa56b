"""`kubevision plan job.yaml`: print the manifests the operator would create, with no cluster.

Why: a platform team reviews what a job will run (images, GPUs, volumes, trial budget) before it
reaches the cluster, and GitOps diffs the rendered manifests. The planner is the operator's own
(`kubevision.operator.reconcile.plan_job`), so what this prints is what the operator applies, except
for the owner references, which need the job's uid from the API server. Warnings (lossy mappings,
unreachable data) go to stderr so stdout stays valid YAML.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from kubevision.cli_guard import guarded

__all__ = ["COMMANDS", "plan", "render_documents"]


@click.command()
@click.argument("job_file", type=click.Path(path_type=Path))
@click.option("--namespace", "-n", help="Namespace of the children (default: the job's metadata.namespace or default).")
@click.option("--trainer-image", help="Trainer image (default: KUBEVISION_TRAINER_IMAGE or the release image).")
@click.option("--output-pvc", help="ReadWriteMany PVC mounted at /mnt/kubevision in trial pods "
              "(KUBEVISION_OUTPUT_PVC).")
@click.option("--output-uri", help="Object-store base URI for trial outputs (KUBEVISION_OUTPUT_URI).")
@click.option("--termination-url", help="Base URL of the operator's early-termination service "
              "(KUBEVISION_TERMINATION_URL).")
@click.option("--checkpoint-uri", help="The model spec.checkpoint.fromJob resolves to (the operator reads it "
              "from that job's status).")
@guarded
def plan(
    job_file: Path,
    namespace: str | None,
    trainer_image: str | None,
    output_pvc: str | None,
    output_uri: str | None,
    termination_url: str | None,
    checkpoint_uri: str | None,
) -> None:
    """Print the ConfigMap and Katib Experiments the operator would create for a job (YAML on stdout)."""
    from kubevision.api.loading import load_job
    from kubevision.operator.reconcile import plan_job
    from kubevision.operator.settings import OperatorSettings

    job = load_job(job_file)
    settings = OperatorSettings.from_env()
    settings = dataclasses.replace(
        settings,
        trainer_image=trainer_image or settings.trainer_image,
        output_pvc=output_pvc or settings.output_pvc,
        output_uri=output_uri.rstrip("/") if output_uri else settings.output_uri,
        termination_url=termination_url.rstrip("/") if termination_url else settings.termination_url,
    )
    ns = namespace or job.metadata.namespace or "default"
    result = plan_job(job, namespace=ns, settings=settings, checkpoint_uri=checkpoint_uri)
    documents = [result.config_map, *result.experiments]
    click.echo(render_documents(documents), nl=False)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.early_termination:
        click.echo(
            f"note: trials read their early-termination token from Secret {result.token_secret_name} (key token), "
            "which the operator creates",
            err=True,
        )


    if result.refinement_trials:
        click.echo(
            f"note: AutoMode runs {len(result.portfolio or [])} portfolio trials first; the operator then creates "
            f"a second Experiment with the remaining {result.refinement_trials} trials around the best one",
            err=True,
        )


def render_documents(documents: Sequence[Mapping[str, Any]]) -> str:
    """YAML documents separated by ---, keys in planner order, multi-line strings (job.yaml) as | blocks."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _str)
    return yaml.dump_all(
        [dict(d) for d in documents], Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120
    )


COMMANDS = [plan]
