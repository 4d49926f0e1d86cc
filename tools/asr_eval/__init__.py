"""Recognition accuracy: character error rate and the labelled Mandarin speech sets."""
