"""Zero-code entry points: distro, configurator and sitecustomize of ``otel-tdd run``."""
