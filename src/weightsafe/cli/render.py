"""Turn result objects into what a person or a pipeline reads: aligned text, or one JSON object."""

from __future__ import annotations

import json
import sys

from ..errors import WeightsafeError
from ..text import escape

MARK = {"ok": "ok", "cached": "ok", "downloaded": "ok", "failed": "FAIL", "mismatch": "MISMATCH",
        "missing": "MISSING", "wrong_size": "WRONG SIZE", "unexpected": "unexpected",
        "unverifiable": "UNKNOWN", "error": "ERROR"}


def size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n} B"


def escaped(lines: list[str]) -> list[str]:
    return [escape(line) for line in lines]


def emit_json(obj: dict, stream=None) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False), file=stream or sys.stdout)


def error_json(err: WeightsafeError | BaseException, exit_code: int) -> dict:
    return {"ok": False, "error": {"type": type(err).__name__, "message": str(err), "exit_code": exit_code}}


def pull_text(report, quiet: bool = False) -> list[str]:
    lines = []
    if not quiet:
        lines.append(f"{report.name} @ {report.revision[:12]} -> {report.path}")
        for f in report.files:
            detail = f.status
            if f.status == "downloaded" and f.resumed_from:
                detail += f", resumed at {size(f.resumed_from)}"
            if f.restarts:
                detail += f", restarted {f.restarts}x"
            if f.message and f.status != "failed":
                detail += f", {f.message}"
            lines.append(f"  {MARK[f.status]:<4}  {f.path:<48} {size(f.size):>10}  {detail}")
        for note in report.notes:
            lines.append(f"  note: {note}")
    for f in report.failures:
        lines.append(f"error: {f.message}")
    if report.signature is not None:
        lines += verify_text(report.signature, quiet)
    if not quiet or not report.ok:
        counts = {s: sum(1 for f in report.files if f.status == s) for s in ("cached", "downloaded", "failed")}
        lines.append(f"{len(report.files)} files: {counts['cached']} cached, {counts['downloaded']} downloaded, "
                     f"{counts['failed']} failed; {size(report.bytes_fetched)} fetched in {report.seconds:.2f} s")
    return escaped(lines)


def verify_text(report, quiet: bool = False) -> list[str]:
    if not report.verdicts and getattr(report, "signature", None) is not None:  # signature only
        return verify_text(report.signature, quiet)
    lines = []
    if not quiet:
        lines.append(f"{report.name}: {report.directory}")
        for v in report.verdicts:
            how = f"({v.method})" if v.method else ""
            lines.append(f"  {MARK[v.status]:<10}  {v.path:<48} {size(v.actual_size):>10}  {how}")
        for note in report.notes:
            lines.append(f"  note: {note}")
    shown = report.failures + [v for v in report.verdicts if v.status == "unexpected" and not quiet
                               and v not in report.failures]
    for v in shown:
        lines.append(f"{'error' if v in report.failures else 'warning'}: {v.message}")
    if not quiet or report.failures:
        bad = len(report.failures)
        lines.append(f"{len(report.verdicts)} files: {'all ok' if not bad else f'{bad} failed'}; "
                     f"{size(report.bytes_hashed)} hashed in {report.seconds:.2f} s")
    if getattr(report, "signature", None) is not None:
        lines += verify_text(report.signature, quiet)
    return escaped(lines)


def check_text(report, quiet: bool = False) -> list[str]:
    lines = []
    if not quiet:
        files = sum(len(v) for v in report.formats.values())
        fmts = ", ".join(f"{len(v)} {k}" for k, v in report.formats.items()) or "none"
        lines.append(f"{report.name}: {report.directory}")
        lines.append(f"  structure: {files} weight file(s) ({fmts}), {report.tensors} tensors, "
                     f"{report.parameters / 1e6:.2f} M parameters, {size(report.bytes)}; "
                     f"{report.structure_seconds * 1000:.0f} ms")
        if report.load:
            ld = report.load
            mix = ", ".join(f"{k} {v / max(ld.parameters, 1):.0%}" for k, v in ld.dtypes.items())
            lines.append(f"  load on {ld.device}: {ld.tensors} tensors, {size(ld.bytes)} in {ld.seconds:.2f} s "
                         f"({size(int(ld.throughput))}/s); dtypes {mix}")
            if ld.peak_device_bytes is not None:
                lines.append(f"  peak device memory: {size(ld.peak_device_bytes)}")
            if report.forward:
                fw = report.forward
                lines.append(f"  forward pass: {fw.architecture} on {fw.device}, {fw.tokens} tokens in "
                             f"{fw.seconds:.2f} s, logits {'finite' if fw.finite else 'NOT finite'}")
            if ld.fits is not None:
                lines.append(f"  whole model {'fits' if ld.fits else 'does NOT fit'} in the "
                             f"{size(ld.free_device_bytes)} free on {ld.device}")
        for note in report.notes:
            lines.append(f"  note: {note}")
    for p in report.problems:
        lines.append(f"error: {'UNSAFE: ' if p.unsafe else ''}{p}")
    if not quiet or not report.ok:
        lines.append("check passed" if report.ok else f"check failed: {len(report.problems)} problem(s)")
    return escaped(lines)


def plan_text(plan, quiet: bool = False) -> list[str]:
    lines = []
    if not quiet:
        lines.append(f"{plan.name} @ {plan.revision[:12]} -> {plan.directory} (dry run: nothing changes)")
        for f in plan.files:
            detail = {"cached": "cached, verified", "verify": "present, would be verified first",
                      "resume": f"would resume at {size(f.have)}", "fetch": "would be fetched"}[f.action]
            lines.append(f"  {f.action:<7} {f.path:<48} {size(f.size):>10}  {detail}")
        for note in plan.notes:
            lines.append(f"  note: {note}")
    unknown = f" (+ {len(plan.unknown_sizes)} file(s) of unknown size)" if plan.unknown_sizes else ""
    todo = sum(1 for f in plan.files if f.action in ("resume", "fetch"))
    lines.append(f"{len(plan.files)} files: {todo} to fetch, {size(plan.bytes_to_fetch)}{unknown}")
    return escaped(lines)


def models_text(listing, quiet: bool = False) -> list[str]:
    """``cache ls``: one row per cached commit, then the total."""
    import time as _time

    lines = [f"cache: {listing.root}"]
    for m in listing.models:
        when = _time.strftime("%Y-%m-%d %H:%M", _time.localtime(m.last_verified)) if m.last_verified else "never"
        rev = m.commit[:12] if m.commit else ", ".join(m.revisions)
        lines.append(f"  {', '.join(m.names):<48} {rev:<14} {m.files:>4} files {size(m.bytes):>10}  verified {when}")
    lines.append(f"{len(listing.models)} model(s), {size(listing.bytes)}")
    return escaped(lines)


def list_text(report, quiet: bool = False) -> list[str]:
    """``list``: one row per manifest (names are letters, digits, '.', '_', '-', '/')."""
    return [f"{r.name:<36} {r.repo:<60} {r.files:>3} files {size(r.bytes):>10}{'  cached' if r.cached else ''}"
            for r in report.models]


def show_text(report, quiet: bool = False) -> list[str]:
    """``show``: the manifest's header, one row per file with its digests' sources, notes, unknowns."""
    m = report.manifest
    lines = [f"{m.name}: {m.repo} @ {m.revision}{'' if m.pinned else '  (not a full commit: unpinned)'}"]
    if m.description:
        lines.append(f"  {m.description}")
    lines.append(f"  manifest: {m.origin}")
    for key, text in m.sources.items():
        lines.append(f"  source {key}: {text}")
    for f in m.files:
        sz = size(f.size) if f.size is not None else f"~{size(f.size_approx)}" if f.size_approx else "?"
        digests = ", ".join(f"{d.alg}:{d.hex[:16]}… ({d.source})" for d in f.digests) or "no digest known"
        lines.append(f"  {escape(f.path):<44} {sz:>10}  {digests}")
    for note in m.notes:
        lines.append(f"  note: {note}")
    if report.unknown_digests:
        lines.append(f"  unknown digests: {len(report.unknown_digests)} file(s); a pull checks them against the "
                     f"hub's own")
    return lines


def lint_text(run, quiet: bool = False) -> list[str]:
    """``manifest lint``: warnings and errors (to stderr), "ok" for a manifest without warnings."""
    lines = []
    for r in run.reports:
        lines += [f"warning: {r.origin}: {w.message} [{w.code}]" for w in r.warnings]
        if not r.warnings:
            lines.append(f"{r.origin}: ok")
    lines += [f"error: {e}" for e in run.errors]
    return lines


def pin_text(report, quiet: bool = False) -> list[str]:
    if not report.changes:
        return [f"{report.manifest}: already pinned and complete"]
    return [f"  {c}" for c in report.changes] + \
        [f"{report.manifest}: pinned at {report.revision} ({len(report.changes)} change(s))"]


def created_text(report) -> str:
    """``manifest create -o FILE``: what was written (to stderr: stdout stays for the manifest)."""
    m = report.manifest
    return f"wrote {report.output}: {m.name}, {len(m.files)} files at {m.revision}"


def clean_text(report, quiet: bool = False) -> list[str]:
    verb = "would remove" if report.dry_run else "removed"
    lines = [f"  {verb} {r.kind:<16} {r.path}  {size(r.bytes)}" for r in report.removed]
    lines += [f"warning: skipped {s}" for s in report.skipped]
    lines.append(f"{report.command}: {verb} {len(report.removed)} item(s), {size(report.bytes)}")
    return escaped(lines)


def export_text(report, quiet: bool = False) -> list[str]:
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
    where = report.endpoint or f"<URL serving {report.destination}>"
    lines.append(f"  pull with: weightsafe pull {report.repo}@{report.commit} --endpoint {where}")
    return lines
