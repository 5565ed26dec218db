"""Injected faults: each matches vendor requests by path regex (and method) for its next N calls."""

import itertools
import re
import threading
from typing import Optional

from .admin_models import FaultSpec, FaultView


class ActiveFault:
    __slots__ = ("id", "pattern", "remaining", "spec")

    def __init__(self, fault_id: str, spec: FaultSpec):
        self.id = fault_id
        self.spec = spec
        self.pattern = re.compile(spec.path)
        self.remaining = spec.count


class FaultRegistry:
    def __init__(self):
        self.lock = threading.Lock()
        self.faults: list = []
        self.ids = itertools.count(1)

    def add(self, spec: FaultSpec) -> str:
        """Register a fault; raises re.error for a bad path pattern."""
        fault = ActiveFault(f"fault-{next(self.ids)}", spec)
        with self.lock:
            self.faults.append(fault)
        return fault.id

    def take(self, method: str, path: str) -> Optional[FaultSpec]:
        """The first fault matching the request, consuming one of its calls."""
        with self.lock:
            for fault in self.faults:
                if (fault.spec.method is None or fault.spec.method.upper() == method) and fault.pattern.search(path):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self.faults.remove(fault)
                    return fault.spec
        return None

    def view(self) -> list:
        with self.lock:
            return [FaultView(id=fault.id, remaining=fault.remaining, **fault.spec.model_dump()) for fault in self.faults]

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()
