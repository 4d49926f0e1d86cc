"""`hotline models ...` (install and list recognition models) and `hotline asr serve` (an ASR worker); the groups
are attached to the `hotline` CLI."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click

from asr.models import MODELS, ModelInstallError, install, list_models
from asr.settings import AsrSettings
from asr.whisper_install import DEFAULT_HUB, WHISPER_MODELS, WhisperSpec, install_whisper
from config.paths import PROJECT_ROOT, resolve


def _models_dir(ctx: click.Context, override: Path | None) -> Path:
    """The folder given, else the host's `asr.models_dir` (`hotline`, honouring --config), else the default."""
    if override is not None:
        return override
    loader = getattr(ctx.find_root().obj, "settings", None)
    if callable(loader):
        settings: Any = loader()
        path: Path = settings.resolve(settings.asr.models_dir)
        return path
    return resolve(AsrSettings().models_dir)


@click.group("models")
def models_group() -> None:
    """Recognition models: install the ones that must be downloaded, list what is there."""


@models_group.command("install")
@click.argument("name", type=click.Choice(sorted([*MODELS, *WHISPER_MODELS])))
@click.option(
    "--url",
    default=None,
    help="Download from this URL (a mirror) instead of the official one; for whisper-* the model hub's address "
    "(default https://huggingface.co; e.g. https://hf-mirror.com).",
)
@click.option(
    "--file",
    "file_",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Install from an archive already downloaded (verified the same way).",
)
@click.option(
    "--dir",
    "models_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Models folder.",
)
@click.option("--timeout", default=60.0, show_default=True, help="Network timeout in seconds.")
@click.pass_context
def install_command(
    ctx: click.Context,
    name: str,
    url: str | None,
    file_: Path | None,
    models_dir: Path | None,
    timeout: float,
) -> None:
    """Download NAME, verify its size and SHA-256, unpack it into the models folder."""
    target_dir = _models_dir(ctx, models_dir)
    if name in WHISPER_MODELS:
        if file_ is not None:
            click.echo(
                "error: --file takes a vosk archive; copy a Whisper model folder and set asr.model_path", err=True
            )
            sys.exit(2)
        _install_whisper(WHISPER_MODELS[name], target_dir, url, timeout)
        return
    spec = MODELS[name]
    source = str(file_) if file_ else (url or spec.url)
    click.echo(f"installing {spec.name} ({spec.size:,} bytes) from {source}")
    try:
        if file_ is not None:
            path = install(spec, target_dir, file=file_)
        else:
            with click.progressbar(length=spec.size, label="downloading", show_pos=False, file=sys.stderr) as bar:
                seen = 0

                def progress(done: int, total: int) -> None:
                    nonlocal seen
                    bar.update(done - seen)
                    seen = done

                path = install(spec, target_dir, url=url, progress=progress, timeout_s=timeout)
    except ModelInstallError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"installed {spec.name} in {path} (sha256 verified)")


def _install_whisper(spec: WhisperSpec, target_dir: Path, hub: str | None, timeout: float) -> None:
    click.echo(f"installing {spec.name} ({spec.repo}) from {hub or DEFAULT_HUB}")
    bar = click.progressbar(length=1, label="downloading", show_pos=False, file=sys.stderr)
    seen = 0

    def progress(done: int, total: int) -> None:
        nonlocal seen
        bar.length = total
        bar.update(done - seen)
        seen = done

    try:
        with bar:
            path = install_whisper(spec, target_dir, hub=hub, progress=progress, timeout_s=timeout)
    except ModelInstallError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    size = spec.name.removeprefix("whisper-")
    click.echo(f"installed {spec.name} in {path} (sizes and checksums verified); use it with asr.model: {size}")


@models_group.command("list")
@click.option(
    "--dir",
    "models_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Models folder.",
)
@click.pass_context
def list_command(ctx: click.Context, models_dir: Path | None) -> None:
    """Models known to the gateway, and whether each is installed."""
    for row in list_models(_models_dir(ctx, models_dir)):
        state = "installed" if row.installed else "missing"
        where = str(row.path) if row.path and row.installed else "-"
        click.echo(f"{row.name:<23} {row.kind:<8} {state:<9} {where}\n{'':<23} {row.description}")


@click.group("asr")
def asr_group() -> None:
    """Recognition as a service: run an ASR worker that gateways stream calls to (asr.service)."""


@asr_group.command("serve")
@click.option("--host", default=None, help="Listen address (asr.service.host).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port (asr.service.port; 0: any free).")
@click.option("--max-streams", type=click.IntRange(1, 10000), default=None, help="asr.service.max_streams.")
@click.option("--name", default=None, help="How the worker names itself in /health and logs.")
@click.pass_context
def serve_command(
    ctx: click.Context, host: str | None, port: int | None, max_streams: int | None, name: str | None
) -> None:
    """Load the model once and serve streams over WebSocket until SIGTERM (drain) or Ctrl-C.

    Prints `listening on ws://HOST:PORT` once ready. Needs HOTLINE_ASR__SERVICE__TOKEN.
    """
    import asyncio
    import gc
    import logging

    from asr.engine import create_local_engine
    from asr.remote.worker import AsrWorker

    root = ctx.find_root().obj
    settings: Any = root.settings()
    asr: AsrSettings = settings.asr
    overrides = {k: v for k, v in {"host": host, "port": port, "max_streams": max_streams}.items() if v is not None}
    service = asr.service.model_copy(update=overrides)
    if service.token is None:
        click.echo("error: an ASR worker needs a token: set HOTLINE_ASR__SERVICE__TOKEN", err=True)
        sys.exit(2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    hints_for = getattr(root, "decode_hints", None)
    hints = hints_for() if callable(hints_for) and asr.second_pass else None
    engine = create_local_engine(asr, PROJECT_ROOT, hints)

    async def run() -> None:
        worker = AsrWorker(engine, service, name)
        await worker.start()
        gc.collect()  # the start's garbage; what is left (the gazetteer's indexes) stays for good, so the
        gc.freeze()  # collector's full passes need not walk it on the event loop (bench/gc_pause.py)
        scheme = worker.scheme
        click.echo(
            f"listening on {scheme}://{service.host}:{worker.port} ({engine.name}, {service.max_streams} streams)"
        )
        await worker.serve_until_signal()

    try:
        asyncio.run(run())
    finally:
        engine.close()


@asr_group.command("status")
@click.option("--timeout", default=2.0, show_default=True, help="Seconds to wait for each worker.")
@click.pass_context
def status_command(ctx: click.Context, timeout: float) -> None:
    """Each ASR worker this gateway lists (asr.service.workers): up or not, streams, queue, draining.

    Exit status 0 when at least one worker takes streams, 1 when none does (for a health check).
    """
    import httpx

    settings: Any = ctx.find_root().obj.settings()
    workers: list[str] = settings.asr.service.workers
    if not workers and settings.asr.engine == "wyoming":
        sys.exit(_wyoming_status(settings.asr.wyoming, timeout))
    if not workers:
        click.echo("no ASR workers listed (asr.service.workers): recognition runs in the gateway's process")
        return
    ca = settings.asr.service.tls_ca_file
    verify: Any = str(resolve(ca)) if ca is not None else True
    usable = 0
    for url in workers:
        health = url.replace("wss://", "https://", 1).replace("ws://", "http://", 1) + "/health"
        try:
            reply = httpx.get(health, timeout=timeout, verify=verify)
            body = reply.json()
        except (httpx.HTTPError, ValueError) as exc:
            click.echo(f"{url:<32} down      {exc or type(exc).__name__}")
            continue
        state = str(body.get("status", "?"))
        usable += state == "ok"
        click.echo(
            f"{url:<32} {state:<9} {body.get('streams')}/{body.get('capacity')} streams, "
            f"queue {body.get('queue')}  ({body.get('worker')})"
        )
    sys.exit(0 if usable else 1)


def _wyoming_status(config: Any, timeout: float) -> int:
    """The Wyoming server of `asr.engine: wyoming`: up with its models (0) or down with why (1)."""
    from asr.wyoming_engine import WyomingError, asr_models, describe_server

    try:
        info = asyncio.run(describe_server(config.model_copy(update={"timeout_s": timeout})))
    except WyomingError as exc:
        click.echo(f"{config.uri:<32} down      {exc}")
        return 1
    models = asr_models(info)
    click.echo(f"{config.uri:<32} ok        wyoming: {', '.join(models) or 'no ASR model listed'}")
    return 0 if models else 1
