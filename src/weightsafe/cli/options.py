"""Options shared by several commands, each defined once so every command spells and documents
it the same way."""

from __future__ import annotations

import click


def signature_options(fn):
    """--signature / --public-key / --certificate-chain (OpenSSF model signatures, extra 'sign')."""
    fn = click.option("--certificate-chain", "certificate_chain", multiple=True, type=click.Path(dir_okay=False),
                      help="Verify the signature with this certificate chain instead of a public key.")(fn)
    fn = click.option("--public-key", "public_key", type=click.Path(dir_okay=False),
                      help="PEM public key the signature must verify with (offline).")(fn)
    return click.option("--signature", type=click.Path(dir_okay=False),
                        help="OpenSSF model signature (sigstore bundle): check the files against it too.")(fn)


def cache_option(fn):
    return click.option("--cache-dir", type=click.Path(file_okay=False),
                        help="Cache root (default: WEIGHTSAFE_CACHE, else the platform cache dir).")(fn)


def output_options(fn):
    fn = click.option("--json", "as_json", is_flag=True, help="Print one JSON report on stdout.")(fn)
    return click.option("--quiet", "-q", is_flag=True, help="Print only errors.")(fn)


def json_option(fn):
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON report on stdout.")(fn)


def device_option(fn):
    return click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda|cuda:N",
                        help="Where the load check loads tensors (auto: CUDA when available).")(fn)


def manifest_option(fn):
    return click.option("--manifest", "manifest_path", type=click.Path(dir_okay=False),
                        help="Use this manifest file.")(fn)


def revision_option(fn):
    return click.option("--revision", help="Revision of ORG/REPO (same as ORG/REPO@REV).")(fn)


def select_options(fn):
    fn = click.option("--exclude", multiple=True, metavar="GLOB", help="Skip files matching GLOB (repeatable).")(fn)
    return click.option("--include", multiple=True, metavar="GLOB", help="Only files matching GLOB (repeatable).")(fn)


def jobs_option(help_text: str):
    return click.option("--jobs", "-j", type=click.IntRange(1, 256), default=None,
                        help=f"{help_text} (default: from the core count).")


def keep_cache_option(done: str):
    return click.option("--keep-cache", is_flag=True,
                        help=f"Keep the files' pages in the page cache (default: dropped once {done}, so a "
                             f"large model does not evict what the machine had cached).")


def where_options(fn):
    """Where the files to verify or check are: the cache (default), or one of these."""
    fn = click.option("--hf-cache", is_flag=True, help="The Hugging Face cache snapshot (HF_HUB_CACHE).")(fn)
    fn = click.option("--local-dir", type=click.Path(file_okay=False), help="A directory pulled with --local-dir.")(fn)
    return click.option("--dir", "directory", type=click.Path(file_okay=False),
                        help="Any directory (with --manifest PATH or a NAME to compare against).")(fn)
