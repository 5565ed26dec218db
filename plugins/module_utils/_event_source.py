# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal use only: the arguments of the collection's event sources (extensions/eda/plugins/event_source/).

ansible-rulebook hands a source its arguments as the rulebook wrote them, after templating: a number may come as a
string (``port: "{{ PORT }}"`` with PORT from the environment), an unset variable as None. ``source_options``
checks them against a table and converts them, so a typo or a wrong value stops the source when it starts,
naming the argument.
"""

from __future__ import annotations

import os

REQUIRED = object()
# ansible-rulebook adds this argument itself when it runs with a feedback queue.
RULEBOOK_ARGS = ("eda_feedback_queue",)
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _convert(kind, value):
    """``value`` as ``kind`` (str, int, float, bool or list); ValueError with what was expected."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError("expected true or false")
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError("expected a number")
        try:
            converted = kind(value)
        except ValueError:
            raise ValueError("expected %s" % ("a whole number" if kind is int else "a number"))
        if kind is int and isinstance(value, float) and value != converted:
            raise ValueError("expected a whole number")
        return converted
    if kind is list:
        if isinstance(value, str):
            value = [item for item in (part.strip() for part in value.split(",")) if item]
        if not isinstance(value, list) or not all(isinstance(item, (str, int)) for item in value):
            raise ValueError("expected a list of strings (or one comma-separated string)")
        return [str(item) for item in value]
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise ValueError("expected a string")


def source_options(source, args, spec, env=None):
    """The options of ``source`` from its ``args``: ``spec`` maps each option to ``(type, default)`` (``REQUIRED``
    for none), ``env`` an option to the environment variable read when the argument is absent or None. ValueError
    naming the option for an unknown, missing or wrong argument."""
    unknown = sorted(set(args) - set(spec) - set(RULEBOOK_ARGS))
    if unknown:
        raise ValueError("%s: unknown argument(s) %s; the arguments are %s" % (source, ", ".join(unknown), ", ".join(spec)))
    options = {}
    for name, (kind, default) in spec.items():
        value = args.get(name)
        if value is None and name in (env or {}):
            value = os.environ.get(env[name]) or None
        if value is None:
            if default is REQUIRED:
                hint = " (or the environment variable %s)" % env[name] if name in (env or {}) else ""
                raise ValueError("%s: the argument %s is required%s" % (source, name, hint))
            options[name] = default
            continue
        try:
            options[name] = _convert(kind, value)
        except ValueError as exc:
            # The value is not shown: it may be a secret.
            raise ValueError("%s: the argument %s has the wrong type: %s" % (source, name, exc))
    return options
