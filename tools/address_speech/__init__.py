"""A labelled set of spoken hotline lines naming Beijing places, synthesised offline as telephone audio."""
