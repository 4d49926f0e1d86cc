"""Build-time and evaluation tools (prompt audio, the gazetteer, ASR evaluation, a scripted softphone): not
imported by the running gateway."""
