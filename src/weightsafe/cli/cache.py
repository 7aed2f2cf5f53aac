"""``weightsafe cache``: what is in the cache, removing a model, collecting garbage."""

from __future__ import annotations

import sys

import click

from .. import api
from ..errors import UsageError
from .app import _emit, _say, guarded, main
from .options import cache_option, json_option
from .render import clean_text, emit_json, models_text, size


@main.group()
def cache():
    """What is in the cache; remove a model; collect garbage."""


@cache.command(name="ls")
@cache_option
@json_option
@guarded
def cache_ls(cache_dir, as_json):
    """Every model in the cache (repo-id pulls too): names, size, revision, last verified."""
    ctx = api.Context.make(cache_dir=cache_dir)
    from .. import housekeeping

    models = housekeeping.list_models(ctx.cache)
    if as_json:
        emit_json({"command": "cache ls", "ok": True, "cache": str(ctx.cache.root),
                   "models": [m.to_dict() for m in models]})
    else:
        _say(models_text(ctx.cache.root, models))
    return 0


@cache.command(name="rm")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Remove without asking.")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@cache_option
@json_option
@guarded
def cache_rm(name, yes, dry_run, cache_dir, as_json):
    """Remove NAME or ORG/REPO[@REV] from the cache (files, records, partial downloads)."""
    ctx = api.Context.make(cache_dir=cache_dir)
    from .. import housekeeping

    plan = housekeeping.remove(ctx.cache, name, dry_run=True)
    if not dry_run and not yes:
        if as_json or not sys.stdin.isatty():
            raise UsageError(f"cache rm {name}: would remove {len(plan.removed)} item(s), {size(plan.bytes)}; "
                             f"pass --yes to confirm (or --dry-run to list them)")
        _say(clean_text(plan))
        if not click.confirm("Remove these?", default=False, err=True):
            raise UsageError("nothing removed")
    report = plan if dry_run else housekeeping.remove(ctx.cache, name)
    _emit(report, clean_text, False, as_json)
    return 0


@cache.command(name="gc")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@cache_option
@json_option
@guarded
def cache_gc(dry_run, cache_dir, as_json):
    """Remove partial downloads no pull is using, rejected copies and orphaned records."""
    from .. import housekeeping

    report = housekeeping.gc(api.Context.make(cache_dir=cache_dir).cache, dry_run=dry_run)
    _emit(report, clean_text, False, as_json)
    return 0
