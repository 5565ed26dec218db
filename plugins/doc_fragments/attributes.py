# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # Attributes every module shares.
    DOCUMENTATION = r"""
attributes:
  action_group:
    description: Use C(group/thingspace.m2m.thingspace) in C(module_defaults) to set the common options (auth, O(api_url)) once.
    support: full
    membership:
      - thingspace.m2m.thingspace
"""
