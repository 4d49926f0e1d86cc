"""The ticket draft: the problem catalogue (`catalogue.yaml`) and the rules that fill a ticket from the caller's
words and the map card."""
