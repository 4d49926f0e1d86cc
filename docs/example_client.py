"""A desk client in 40 lines: log in, follow the operator's stream, reconnect where it stopped.

Run: .venv/bin/python docs/example_client.py http://127.0.0.1:8080 op1001   (password on stdin)
"""

from __future__ import annotations

import asyncio
import json
import sys

import httpx
import websockets


async def follow(base: str, user: str, password: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        login = await http.post("/api/auth/login", json={"username": user, "password": password})
        login.raise_for_status()
        token = login.json()["token"]
        me = (await http.get("/api/me", headers={"Authorization": f"Bearer {token}"})).json()
    last_seq, epoch = me["last_seq"], me["epoch"]
    ws_base = base.replace("http", "ws", 1)
    while True:
        url = f"{ws_base}/api/events?token={token}&after={last_seq}&epoch={epoch}"
        try:
            async with websockets.connect(url) as ws:
                async for raw in ws:
                    message = json.loads(raw)
                    if message["type"] == "resync":  # another database: reload the call over REST here
                        last_seq, epoch = message["last_seq"], message["epoch"]
                    elif message.get("seq", 0) > last_seq:
                        last_seq = message["seq"]
                        print(message["type"], message.get("text") or message.get("reason") or "", flush=True)
        except websockets.ConnectionClosed as closed:
            if closed.rcvd is not None and closed.rcvd.code in (4401, 4403):
                raise SystemExit(f"refused: {closed.rcvd.reason}") from None
        await asyncio.sleep(1)  # dropped: resume from last_seq


if __name__ == "__main__":
    asyncio.run(follow(sys.argv[1], sys.argv[2], sys.stdin.readline().rstrip("\n")))
