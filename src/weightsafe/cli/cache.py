"""``weightsafe cache``: what is in the cache, removing a model, collecting garbage."""

from __future__ import annotations

import sys

import click

from .. import api
from ..errors import UsageError
from .app import _emit, _say, guarded, main
from .options import cache_option, json_option
from .render import clean_text, models_text, size


@main.group()
def cache():
    """What is in the cache; remove a model; collect garbage."""


@cache.command(name="ls")
@cache_option
@json_option
@guarded
def cache_ls(cache_dir, as_json):
    """Every model in the cache (repo-id pulls too): names, size, revision, last verified."""
    _emit(api.cache_ls(cache_dir=cache_dir), models_text, False, as_json)
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
    plan = api.cache_rm(name, dry_run=True, cache_dir=cache_dir)
    if not dry_run and not yes:
        if as_json or not sys.stdin.isatty():
            raise UsageError(f"cache rm {name}: would remove {len(plan.removed)} item(s), {size(plan.bytes)}; "
                             f"pass --yes to confirm (or --dry-run to list them)")
        _say(clean_text(plan))
        if not click.confirm("Remove these?", default=False, err=True):
            raise UsageError("nothing removed")
    report = plan if dry_run else api.cache_rm(name, cache_dir=cache_dir)
    _emit(report, clean_text, False, as_json)
    return 0


@cache.command(name="gc")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@cache_option
@json_option
@guarded
def cache_gc(dry_run, cache_dir, as_json):
    """Remove partial downloads no pull is using, rejected copies and orphaned records."""
    report = api.cache_gc(dry_run=dry_run, cache_dir=cache_dir)
    _emit(report, clean_text, False, as_json)
    return 0
