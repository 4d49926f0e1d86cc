"""The cluster on one machine: Kamailio, NATS, PostgreSQL and N media nodes (`hotline cluster up`)."""
