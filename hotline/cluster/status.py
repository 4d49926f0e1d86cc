"""`hotline cluster status`: what the person on call asks first. For each media node: whether Kamailio has it in
rotation (its dispatcher flags), whether its gateway is ready, and its calls; whether each desk is ready. Read from
the cluster's own `cluster.json` (written by `hotline cluster up`) and the parts' HTTP endpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

TIMEOUT_S = 3.0


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=TIMEOUT_S)
    except httpx.HTTPError:
        return None


def _gauge(metrics: str, name: str) -> str:
    for line in metrics.splitlines():
        if line.startswith(f"{name} "):
            return str(int(float(line.split()[1])))
    return "?"


def _dispatcher(rpc_url: str) -> dict[str, str] | None:
    """Node SIP URI -> Kamailio's flags for it (A active, I inactive, T trying; P probing); None: no answer."""
    try:
        answer = httpx.post(rpc_url, json={"jsonrpc": "2.0", "method": "dispatcher.list", "id": 1}, timeout=TIMEOUT_S)
        records: list[dict[str, Any]] = answer.json()["result"]["RECORDS"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None
    return {target["DEST"]["URI"]: target["DEST"]["FLAGS"] for record in records for target in record["SET"]["TARGETS"]}


def cluster_status(root: Path) -> tuple[list[str], bool]:
    """Lines to print, and whether every part is up."""
    state_file = root / "cluster.json"
    if not state_file.exists():
        return [f"no cluster in {root} (start one: hotline cluster up)"], False
    state = json.loads(state_file.read_text())
    dispatcher = _dispatcher(state["kamailio_rpc"])
    healthy = dispatcher is not None
    lines = [f"entry     {state['sip']}  Kamailio {'answers' if dispatcher is not None else 'DOES NOT ANSWER'}"]
    for node in state["nodes"]:
        flags = (dispatcher or {}).get(node["sip"], "?")
        in_rotation = flags.startswith("A") or flags.startswith("T")
        ready = _get(f"{node['http']}/readyz")
        metrics = _get(f"{node['http']}/metrics")
        up = ready is not None and ready.status_code == 200
        calls = _gauge(metrics.text, "hotline_active_calls") if metrics is not None else "?"
        healthy &= up and in_rotation
        lines.append(
            f"{node['name']:<9} {node['sip']:<22} rotation {'in' if in_rotation else 'OUT'} ({flags})  "
            f"gateway {'ready' if up else 'DOWN'}  calls {calls}"
        )
    for desk in state["desks"]:
        ready = _get(f"{desk}/readyz")
        metrics = _get(f"{desk}/metrics")
        up = ready is not None and ready.status_code == 200
        healthy &= up
        writes = metrics is not None and _gauge(metrics.text, "hotline_desk_log_writer") == "1"
        lines.append(f"desk      {desk:<22} {'ready' if up else 'DOWN'}" + ("  writes the event log" if writes else ""))
    return lines, healthy


__all__ = ["cluster_status"]
