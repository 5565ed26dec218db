# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running a module of the collection in the controller's worker process instead of as a module (docs/design.md,
"Tasks on the controller").

When the task would run the module on the controller anyway (local connection, no become, no async, no task
``environment``) and the controller's Python has the collection's requirements, ``ControllerAction`` calls the
module's ``main`` with ``ControllerModule`` in place of ThingSpaceModule: the same argument spec, checks, code and
result, without AnsiballZ, a new interpreter and its imports. Otherwise it runs the module as Ansible's ``normal``
action does."""

from __future__ import annotations

import json
import netrc  # noqa: F401  # pylint: disable=unused-import
import os
from functools import partial
from importlib.util import find_spec

from ansible import constants as C
from ansible.module_utils.common.arg_spec import ModuleArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.errors import UnsupportedError
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

# Imported here because the strategy loads action plugins in the main process: the workers it forks for the tasks
# then find requests, pydantic and the wire models loaded, instead of importing them for every task (netrc above too:
# requests imports it at a process's first request, to look for credentials in ~/.netrc).
from ansible_collections.thingspace.m2m.plugins.module_utils import models, transport  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.thingspace.m2m.plugins.module_utils.env import ENV_VARS
from ansible_collections.thingspace.m2m.plugins.module_utils.module import REQUIRED_LIBRARIES, ThingSpaceTask, full_argument_spec


class TaskExit(BaseException):
    """The end of a task, with its result; a BaseException as SystemExit is, so no ``except Exception`` stops it."""

    def __init__(self, result):
        super().__init__()
        self.result = result


class ControllerModule(ThingSpaceTask):
    """The module's side of a task run in the controller: ``params`` validated by Ansible's own validator with the
    module's argument spec and checks, and a result as AnsibleModule returns it (warnings, no_log values masked,
    JSON types). ``exit_json`` and ``fail_json`` raise TaskExit."""

    def __init__(self, args, check_mode, name, argument_spec, *, inject_invocation, supports_check_mode=False, **checks):
        self.check_mode = check_mode
        self.inject_invocation = inject_invocation
        self.no_log_values = set()
        self._warnings = []
        self.params = dict(args)
        validation = ModuleArgumentSpecValidator(full_argument_spec(argument_spec), **checks).validate(self.params)
        self.params.update(validation.validated_parameters)
        self.no_log_values.update(validation._no_log_values)
        if validation.errors.errors:
            msg = validation.errors.msg
            if isinstance(validation.errors[0], UnsupportedError):
                msg = "Unsupported parameters for (%s) module: %s" % (name, msg)
            self.fail_json(msg=msg)
        if check_mode and not supports_check_mode:
            self.exit_json(skipped=True, msg="remote module (%s) does not support check mode" % name)
        self._start()

    def warn(self, warning):
        self._warnings.append(warning)

    def exit_json(self, **result):
        raise TaskExit(self._result(result))

    def fail_json(self, msg, **result):
        raise TaskExit(self._result(dict(result, failed=True, msg=str(msg))))

    def _result(self, result):
        """As AnsibleModule's _return_formatted makes it: ``invocation`` only when asked for, True, False and None kept where
        a no_log value matches."""
        if self.inject_invocation:
            result.setdefault("invocation", {"module_args": self.params})
        else:
            result.pop("invocation", None)
        if self._warnings:
            result["warnings"] = self._warnings
        kept = {name: value for name, value in result.items() if value is None or isinstance(value, bool)}
        result = remove_values(result, self.no_log_values)
        result.update(kept)
        return json.loads(json.dumps(result))


def _inject_invocation(task_vars):
    """Whether a module adds ``invocation`` to its result: from ansible-core 2.21 when the setting INJECT_INVOCATION is
    on (off by default); before, always (the strategy then leaves it out of registered results)."""
    if C.config.get_configuration_definition("INJECT_INVOCATION") is None:
        return True
    return bool(C.config.get_config_value("INJECT_INVOCATION", variables=task_vars))


class ControllerAction(ActionBase):
    """The action plugin of a module whose ``main(module_class)`` is ``MODULE.main``."""

    MODULE = None
    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        in_controller = self._in_controller()
        wrap_async = not in_controller and self._task.async_val and not self._connection.has_native_async
        try:
            args = self._module_args(in_controller)
            if not in_controller:
                # The module, as Ansible's normal action runs it, with the arguments of _module_args.
                return merge_hash(result, self._execute_module(module_args=args, task_vars=task_vars, wrap_async=wrap_async))
            self.MODULE.main(partial(ControllerModule, args, bool(self._task.check_mode), self._task.action,
                                     inject_invocation=_inject_invocation(task_vars)))
        except TaskExit as done:
            result.update(done.result)
        finally:
            if not wrap_async:
                self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _module_args(self, in_controller):
        """The task's arguments as the module's code gets them, in the controller or on the host; an action whose options
        name controller files resolves them here, and may end the task by raising TaskExit."""
        return self._task.args

    def _in_controller(self):
        """Whether the module would run here, as this user, with this environment, and this Python can run it."""
        environment = {}
        self._compute_environment_string(environment)
        if self._connection.transport != "local" or self._play_context.become or self._task.async_val or environment:
            return False
        libraries = list(REQUIRED_LIBRARIES)
        if self._task.args.get("ledger_url") or os.environ.get(ENV_VARS["ledger_url"]):
            libraries.append("psycopg")
        return all(find_spec(library) is not None for library in libraries)
