"""``weightsafe mirror``: publish verified models for a fleet (a directory nginx or a CDN serves,
or an S3 bucket). The work is in exporter.py, behind ``api.export``; this only parses options and prints the report."""

from __future__ import annotations

import click

from .. import api
from .app import _emit, guarded
from .options import cache_option, jobs_option, output_options, revision_option
from .render import export_text


@click.group()
def mirror():
    """Serve verified models to many machines from one copy."""


@mirror.command("export")
@click.argument("name")
@click.argument("destination")
@revision_option
@click.option("--alias", default=None, metavar="REV",
              help="Revision name to point at the commit (default: the one pulled, e.g. main; '' for none).")
@jobs_option("Files hashed or uploaded at once")
@cache_option
@output_options
@guarded
def export(name, destination, revision, alias, jobs, cache_dir, quiet, as_json):
    """Copy NAME (verified in the cache) to DESTINATION in the hub's URL layout:
    a directory (hard links where possible) or s3://bucket/prefix. Re-running it is a no-op."""
    report = api.export(name, destination, revision=revision, cache_dir=cache_dir, alias=alias, jobs=jobs)
    _emit(report, export_text, quiet, as_json)
    return 0


__all__ = ["mirror"]
