"""The event contract between the call side and the desks: one pydantic model per event type (`contract`), the
address card's body (`address`). No dependencies but pydantic: every stage may import it."""
