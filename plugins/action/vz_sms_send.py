# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vz_sms_send in the controller's worker when the task runs on the controller; the module otherwise
(plugins/plugin_utils/controller.py). ``devices_file`` is a controller file either way."""

from __future__ import annotations

import os

from ansible.errors import AnsibleFileNotFound

from ansible_collections.thingspace.m2m.plugins.modules import vz_sms_send
from ansible_collections.thingspace.m2m.plugins.plugin_utils.controller import ControllerAction, TaskExit


class ActionModule(ControllerAction):
    MODULE = vz_sms_send

    def _module_args(self, in_controller):
        """``devices_file`` found as the ``src`` of ansible.builtin.copy is, and copied to the host when the module runs there
        (as ansible.builtin.uri does with its ``src``)."""
        path = self._task.args.get("devices_file")
        if not isinstance(path, str):
            return self._task.args  # absent, or refused by the module's argument checks
        try:
            path = self._find_needle("files", path)
        except AnsibleFileNotFound as missing:
            msg = "devices_file: cannot find %s on the controller" % path
            if missing.paths:  # a relative path: where it was looked for
                msg += "; looked for %s" % ", ".join(dict.fromkeys(missing.paths))
            raise TaskExit({"failed": True, "msg": msg})
        if not in_controller:
            shell = self._connection._shell
            if not shell.tmpdir:
                self._make_tmp_path()
            remote = shell.join_path(shell.tmpdir, os.path.basename(path))
            self._transfer_file(path, remote)
            self._fixup_perms2((shell.tmpdir, remote))
            path = remote
        return dict(self._task.args, devices_file=path)
