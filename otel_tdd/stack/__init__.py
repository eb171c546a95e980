"""The local stack: build, start, watch and stop the Collector, Prometheus and Alertmanager."""
