"""The model commands: pull, verify, check, list, show, path. Each parses its options, calls one
public API function and prints the report it returns."""

from __future__ import annotations

import click

from .. import api
from ..errors import ExitCode
from ..settings import Settings
from .app import CANCEL, _emit, _listing, _progress, _say, _tune_allocator, guarded, main
from .options import (cache_option, device_option, jobs_option, json_option, keep_cache_option, manifest_option,
                      output_options, revision_option, select_options, signature_options, where_options)
from .render import check_text, emit_json, list_text, plan_text, pull_text, show_text, verify_text


@main.command()
@click.argument("name")
@revision_option
@manifest_option
@click.option("--endpoint", help="Hub or mirror base URL (default: HF_ENDPOINT, then huggingface.co).")
@select_options
@jobs_option("Files fetched at once")
@click.option("--offline", is_flag=True, help="Never use the network (also HF_HUB_OFFLINE=1).")
@click.option("--local-dir", type=click.Path(file_okay=False),
              help="Also place the verified files at DIR/<path> (a deploy directory).")
@click.option("--hf-cache", is_flag=True,
              help="Also place them in the Hugging Face cache, where transformers finds them by repo id.")
@click.option("--dry-run", is_flag=True, help="Say what would be fetched and how many bytes; change nothing.")
@click.option("--check", "then_check", is_flag=True, help="Run the load check after a successful pull.")
@keep_cache_option("on disk")
@signature_options
@device_option
@cache_option
@output_options
@guarded
def pull(name, revision, manifest_path, endpoint, include, exclude, jobs, offline, local_dir, hf_cache, dry_run,
         then_check, keep_cache, signature, public_key, certificate_chain, device, cache_dir, quiet, as_json):
    """Fetch NAME (a manifest name, or ORG/REPO[@REV]) into the cache and verify every byte."""
    _tune_allocator()
    settings = Settings.from_env()
    common = dict(revision=revision, endpoint=endpoint, cache_dir=cache_dir, include=include, exclude=exclude,
                  offline=offline, manifest=manifest_path, settings=settings)
    if dry_run:
        _emit(api.plan(name, **common), plan_text, quiet, as_json)
        return ExitCode.OK
    report = api.pull_report(name, local_dir=local_dir, hf_cache=hf_cache, jobs=jobs,
                             progress=_progress(settings, quiet, as_json), cancel=CANCEL,
                             signature=signature, public_key=public_key, certificate_chain=certificate_chain,
                             keep_cache=keep_cache, **common)
    checked = None
    if then_check and report.ok:
        where = {"local_dir": local_dir} if local_dir else {"hf_cache": True} if hf_cache else {}
        checked = api.check(None if manifest_path else name, revision=revision, manifest=manifest_path,
                            cache_dir=cache_dir, device=device, settings=settings, **where)
    if as_json:
        emit_json({**report.to_dict(), "check": checked.to_dict() if checked else None})
    else:
        _say(pull_text(report, quiet))
        if checked:
            _say(check_text(checked, quiet))
    return report.exit_code or (checked.exit_code if checked else ExitCode.OK)


@main.command()
@click.argument("name", required=False)
@revision_option
@where_options
@manifest_option
@click.option("--full", is_flag=True, help="Re-check every manifest digest, not the recorded fingerprint.")
@click.option("--strict", is_flag=True, help="Files not in the manifest fail the check.")
@select_options
@jobs_option("Files hashed at once")
@keep_cache_option("read")
@signature_options
@cache_option
@output_options
@guarded
def verify(name, revision, directory, local_dir, hf_cache, manifest_path, full, strict, include, exclude, jobs,
           keep_cache, signature, public_key, certificate_chain, cache_dir, quiet, as_json):
    """Hash the files of NAME (or --dir, --local-dir, --hf-cache) and say exactly what is wrong; with
    --signature, also against an OpenSSF model signature (then --dir needs no manifest)."""
    report = api.verify(name, revision=revision, directory=directory, local_dir=local_dir, hf_cache=hf_cache,
                        manifest=manifest_path, cache_dir=cache_dir, full=full, strict=strict, include=include,
                        exclude=exclude, jobs=jobs, signature=signature, public_key=public_key,
                        certificate_chain=certificate_chain, keep_cache=keep_cache)
    _emit(report, verify_text, quiet, as_json)
    return ExitCode.OK if report.ok else ExitCode.INTEGRITY


@main.command()
@click.argument("name", required=False)
@revision_option
@where_options
@manifest_option
@click.option("--structure-only", is_flag=True, help="Headers, pickle scan, index and config only; load nothing.")
@click.option("--numerics", is_flag=True, help="Also count NaN/Inf values per tensor (reads every value).")
@click.option("--strict", is_flag=True, help="Refuse auxiliary pickles (training_args.bin, ...) that import anything"
              " beyond what a state dict needs.")
@click.option("--forward", is_flag=True, help="After the load, build the model from config.json and run one short "
              "forward pass (needs transformers).")
@device_option
@cache_option
@output_options
@guarded
def check(name, revision, directory, local_dir, hf_cache, manifest_path, structure_only, numerics, strict, forward,
          device, cache_dir, quiet, as_json):
    """Prove the weights of NAME (or --dir, --local-dir, --hf-cache) are usable: headers, pickle safety,
    index, config, load."""
    report = api.check(name, revision=revision, directory=directory, local_dir=local_dir, hf_cache=hf_cache,
                       manifest=manifest_path, cache_dir=cache_dir, device=device, structure_only=structure_only,
                       numerics=numerics, strict=strict, forward=forward)
    _emit(report, check_text, quiet, as_json)
    return report.exit_code


@main.command(name="list")
@cache_option
@json_option
@guarded
def list_(cache_dir, as_json):
    """List the models weightsafe has manifests for, and whether each is in the cache."""
    report = api.models(cache_dir=cache_dir)
    _listing(report, list_text, as_json)
    return 0


@main.command()
@click.argument("name")
@manifest_option
@cache_option
@json_option
@guarded
def show(name, manifest_path, cache_dir, as_json):
    """Show a manifest: repo, revision, files, sizes, digests and their sources, and what is unknown."""
    report = api.show(name, manifest=manifest_path, cache_dir=cache_dir)
    _listing(report, show_text, as_json)
    return 0


@main.command()
@click.argument("name")
@revision_option
@manifest_option
@click.option("--hf-cache", is_flag=True, help="The snapshot directory in the Hugging Face cache.")
@cache_option
@json_option
@guarded
def path(name, revision, manifest_path, hf_cache, cache_dir, as_json):
    """Print the local directory of NAME (exit 1 if it has not been pulled there)."""
    directory = api.path(name, revision=revision, manifest=manifest_path, cache_dir=cache_dir, hf_cache=hf_cache)
    if as_json:
        emit_json({"command": "path", "ok": True, "name": name, "path": str(directory)})
    else:
        click.echo(str(directory))
    return ExitCode.OK
