"""`weightsafe manifest ...`: write a manifest for any model, lint one, pin one.

A thin layer over ``api.manifest_create``, ``api.lint`` and ``api.manifest_pin`` (registered on
the main group in cli/__init__.py). Findings (card digests that could not be imported, sources
that disagree) go to stderr as warnings and into the manifest's notes; the manifest itself goes
to -o FILE or stdout.
"""

from __future__ import annotations

import click

from .. import api
from ..errors import ExitCode
from .app import _listing, _say, guarded
from .options import cache_option, json_option, signature_options
from .render import created_text, emit_json, lint_text, pin_text


def _warn(lines) -> None:
    for line in lines:
        click.echo(f"warning: {line}", err=True)


@click.group(name="manifest")
def manifest_group():
    """Write, lint and pin manifests."""


@manifest_group.command()
@click.argument("spec", required=False, metavar="ORG/REPO[@REV]")
@click.option("--dir", "directory", type=click.Path(file_okay=False), help="Describe local files instead of a hub repo.")
@click.option("--alg", default="sha256", show_default=True, help="With --dir: digests to compute, comma-separated.")
@click.option("--endpoint", help="Hub or mirror base URL (default: HF_ENDPOINT, then huggingface.co).")
@click.option("--name", help="Manifest name (default: the repo's name, or the directory's).")
@click.option("--repo", help="With --dir: the ORG/NAME this model is known as.")
@click.option("--card", "cards", multiple=True, type=click.Path(dir_okay=False),
              help="Also import checksums from this text (a release note); repeatable.")
@click.option("--no-readme", is_flag=True, help="Do not read the repo's README.md for checksums.")
@signature_options
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here (default: stdout).")
@click.option("--jobs", "-j", type=click.IntRange(1, 256), default=None,
              help="Files hashed at once (default: from the core count).")
@cache_option
@json_option
@guarded
def create(spec, directory, alg, endpoint, name, repo, cards, no_readme, signature, public_key,
           certificate_chain, output, jobs, cache_dir, as_json):
    """Write a manifest for ORG/REPO[@REV] (pinned to its commit) or for local files (--dir)."""
    algs = [a.strip() for a in alg.split(",") if a.strip()]
    made = api.manifest_create(spec, directory=directory, algs=algs, endpoint=endpoint, name=name, repo=repo,
                               cards=cards, read_card=not no_readme, signature=signature, public_key=public_key,
                               certificate_chain=certificate_chain, output=output, jobs=jobs, cache_dir=cache_dir)
    _warn(made.findings)
    if as_json:
        emit_json(made.to_dict())
    elif output:
        click.echo(created_text(made), err=True)
    else:
        click.echo(made.to_toml(), nl=False)
    return ExitCode.OK


@manifest_group.command(name="lint")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--strict", is_flag=True, help="Warnings fail the lint (exit 1).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report on stdout.")
@guarded
def lint_cmd(files, strict, as_json):
    """Check manifests: schema errors exit 2; warnings for what they leave unchecked."""
    run = api.lint(files, strict=strict)
    if as_json:
        emit_json(run.to_dict())
    else:
        _say(lint_text(run))
    return run.exit_code


@manifest_group.command(name="pin")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--revision", help="Pin this branch, tag or commit instead of the manifest's revision.")
@click.option("--endpoint", help="Hub or mirror base URL (default: HF_ENDPOINT, then huggingface.co).")
@json_option
@guarded
def pin_cmd(file, revision, endpoint, as_json):
    """Resolve FILE's branch revision to its commit and fill missing sizes and hub digests, in place."""
    report = api.manifest_pin(file, revision=revision, endpoint=endpoint)
    _listing(report, pin_text, as_json)
    return ExitCode.OK
