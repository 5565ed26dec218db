# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vz_sms_send in the controller's worker when the task runs on the controller; the module otherwise
(plugins/plugin_utils/controller.py)."""

from __future__ import annotations

from ansible_collections.thingspace.m2m.plugins.modules import vz_sms_send
from ansible_collections.thingspace.m2m.plugins.plugin_utils.controller import ControllerAction


class ActionModule(ControllerAction):
    MODULE = vz_sms_send
