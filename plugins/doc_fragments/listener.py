# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # The credentials of a callback listener registration (module_utils/module.py LISTENER_ARGUMENT_SPEC).
    DOCUMENTATION = r"""
options:
  callback_username:
    description:
      - User name ThingSpace puts in every callback body, so the listener can check it.
      - Not O(username), which is the ThingSpace login of the module itself.
    type: str
  callback_password:
    description:
      - Password ThingSpace puts in every callback body (in clear text, so use an C(https) listener).
      - With a plain C(http) listener URL whose host is not loopback (C(localhost), 127.0.0.0/8, C(::1)), the task warns
        that the password would cross the network in clear.
      - Compared with the registration only where the API lists passwords.
    type: str
"""
