"""The built-in call script used until an IVR flow is configured: greet, ask for digits, read them back.

It exercises every call operation (answer, play, barge-in, digit collection with timeouts, hang-up), which is what
the telephony tests and benchmarks call through.
"""

from __future__ import annotations

from voice.session import CallHandler, CallSession
from voice.settings import CallSettings


def make_basic_flow(settings: CallSettings) -> CallHandler:
    async def basic_flow(call: CallSession) -> None:
        await call.answer()
        await call.play(settings.greeting)
        await call.play(settings.digits_prompt, interruptible=True)
        entry = await call.gather(
            settings.max_digits,
            settings.first_digit_timeout_s,
            settings.inter_digit_timeout_s,
            settings.total_digit_timeout_s,
            settings.terminator,
        )
        if entry.digits:
            await call.play(["sound:you-entered", f"digits:{entry.digits}"])
        else:
            await call.play("sound:vm-goodbye")
        await call.hangup()

    return basic_flow
