"""`weightsafe manifest ...`: write a manifest for any model, lint one, pin one.

A thin layer over authoring.py and lint.py (registered on the main group in cli/__init__.py). Findings
(card digests that could not be imported, sources that disagree) go to stderr as warnings and
into the manifest's notes; the manifest itself goes to -o FILE or stdout.
"""

from __future__ import annotations

from pathlib import Path

import click

from .. import api, catalog
from .. import manifest as mf
from ..errors import ExitCode, ManifestError, UsageError
from .app import guarded
from .options import cache_option, json_option, signature_options
from .render import emit_json


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
    from .. import authoring  # here, not at the top: every command's start-up would pay for it

    if bool(spec) == bool(directory):
        raise UsageError("give ORG/REPO[@REV] or --dir DIR (not both)")
    if directory and (cards or no_readme or endpoint):
        raise UsageError("--card, --no-readme and --endpoint describe a hub repo; not with --dir")
    if spec and repo:
        raise UsageError("--repo is for --dir; ORG/REPO is the argument itself")
    signed = None
    if signature:
        from ..signing import read_signed

        signed = read_signed(signature, public_key, certificate_chain)
    if directory:
        algs = [a.strip() for a in alg.split(",") if a.strip()]
        skip = [Path(p) for p in (output, signature) if p]
        made = authoring.from_dir(directory, name or Path(directory).resolve().name, repo, algs=algs, jobs=jobs,
                                  skip=skip)
    else:
        repo_id, rev = catalog.split_spec(spec)
        ctx = api.Context.make(endpoint=endpoint, cache_dir=cache_dir)
        made = authoring.from_hub(ctx.source(), repo_id, rev, name=name, extra=authoring.read_texts(cards),
                                  cache=ctx.cache, read_card=not no_readme)
    if signed:
        made = authoring.add_signed(made, signed.digests, signed.describe())
    _warn(f.message for f in made.findings)
    if output:
        authoring.write(made.manifest, output)
    if as_json:
        emit_json({"command": "manifest create", "ok": True, "output": output, "name": made.manifest.name,
                   "repo": made.manifest.repo, "revision": made.manifest.revision,
                   "files": len(made.manifest.files), "findings": [f.message for f in made.findings],
                   "manifest": mf.to_toml(made.manifest)})
    elif output:
        click.echo(f"wrote {output}: {made.manifest.name}, {len(made.manifest.files)} files at "
                   f"{made.manifest.revision}", err=True)
    else:
        click.echo(mf.to_toml(made.manifest), nl=False)
    return ExitCode.OK


@manifest_group.command(name="lint")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--strict", is_flag=True, help="Warnings fail the lint (exit 1).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report on stdout.")
@guarded
def lint_cmd(files, strict, as_json):
    """Check manifests: schema errors exit 2; warnings for what they leave unchecked."""
    from ..lint import lint as lint_manifest

    reports, errors = [], []
    for path in files:
        try:
            reports.append(lint_manifest(mf.load(path)))
        except ManifestError as e:
            errors.append(e)
    warned = any(r.warnings for r in reports)
    code = ExitCode.USAGE if errors else ExitCode.INTEGRITY if strict and warned else ExitCode.OK
    if as_json:
        emit_json({"command": "manifest lint", "ok": code == 0, "strict": strict,
                   "manifests": [r.to_dict() for r in reports],
                   "errors": [{"manifest": e.source, "field": e.field, "reason": e.reason} for e in errors]})
        return code
    for r in reports:
        for w in r.warnings:
            click.echo(f"warning: {r.origin}: {w.message} [{w.code}]", err=True)
        if not r.warnings:
            click.echo(f"{r.origin}: ok")
    for e in errors:
        click.echo(f"error: {e}", err=True)
    return code


@manifest_group.command(name="pin")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--revision", help="Pin this branch, tag or commit instead of the manifest's revision.")
@click.option("--endpoint", help="Hub or mirror base URL (default: HF_ENDPOINT, then huggingface.co).")
@json_option
@guarded
def pin_cmd(file, revision, endpoint, as_json):
    """Resolve FILE's branch revision to its commit and fill missing sizes and hub digests, in place."""
    from .. import authoring

    m = mf.load(file)
    pinned, changes = authoring.pin(m, api.Context.make(endpoint=endpoint).source(), revision)
    if changes:
        authoring.write(pinned, file)
    if as_json:
        emit_json({"command": "manifest pin", "ok": True, "manifest": file, "revision": pinned.revision,
                   "changes": changes})
        return ExitCode.OK
    if not changes:
        click.echo(f"{file}: already pinned and complete")
        return ExitCode.OK
    for c in changes:
        click.echo(f"  {c}")
    click.echo(f"{file}: pinned at {pinned.revision} ({len(changes)} change(s))")
    return ExitCode.OK

