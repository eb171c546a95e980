"""The log record path: its shape, the pipeline steps, OTel emission, the stdlib handler.

docs/logging.md describes the record and the order of the steps; docs/architecture.md
("Logs") how this package sits between ``_runtime`` and the ``StructuredLogger`` facade.
"""
