"""A local ThingSpace M2M server for demos, tests and offline playbook runs."""

__version__ = "0.1.0"
