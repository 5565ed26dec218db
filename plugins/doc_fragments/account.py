# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # The account a module acts on, when it is required (vz_sms_send documents its optional account_name itself).
    DOCUMENTATION = r"""
options:
  account_name:
    description: Billing account, with its leading zeros (quote it in YAML).
    type: str
    required: true
"""
