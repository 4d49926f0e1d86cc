"""A scripted SIP phone (pjsua2, one child process each) for the demo, the tests and the benchmarks."""
