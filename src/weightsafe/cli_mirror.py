"""``weightsafe mirror``: publish verified models for a fleet (a directory nginx or a CDN serves,
or an S3 bucket). The work is in mirror.py; this only parses options and prints the report."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .cli import _emit, cache_option, guarded, jobs_option, output_options, revision_option
if TYPE_CHECKING:  # mirror.py loads only for `mirror export`, not for every command's start-up
    from .mirror import ExportReport


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
    from . import mirror as mirror_mod

    report = mirror_mod.export(name, destination, revision=revision, cache_dir=cache_dir,
                               alias=alias, jobs=jobs)
    _emit(report, export_text, quiet, as_json)
    return 0


def export_text(report: ExportReport, quiet: bool) -> list[str]:
    if quiet:
        return []
    counts: dict[str, int] = {}
    for f in report.files:
        counts[f.method] = counts.get(f.method, 0) + 1
    how = ", ".join(f"{n} {m}" for m, n in sorted(counts.items()))
    lines = [f"exported {report.name} ({report.repo}@{report.commit[:12]}) to {report.destination}: "
             f"{len(report.files)} file(s) ({how})" + (" (nothing changed)" if not report.changed else ""),
             f"  manifest: {report.manifest}"]
    lines += [f"  alias: {a}" for a in report.aliases]
    lines += [f"  note: {n}" for n in report.notes]
    where = report.destination if report.destination.startswith("s3://") else \
        f"<URL serving {report.destination}>"
    lines.append(f"  pull with: weightsafe pull {report.repo}@{report.commit} --endpoint {where}")
    return lines


__all__ = ["mirror", "export_text"]
