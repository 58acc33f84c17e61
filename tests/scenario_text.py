"""Scenario-file text shared by the command-line tests (written to tmp files)."""

KETAMINE_VS_SALINE = """
[[arms]]
name = "ketamine"
  [[arms.doses]]
  drug = "ketamine"
  amount = "0.5 mg/kg"
  route = "iv_infusion"
  duration = "40 min"
  at = ["0 h"]

[[arms]]
name = "saline"
  [[arms.doses]]
  drug = "saline"
  amount = "0 mg/kg"
  route = "iv_infusion"
  duration = "40 min"
  at = ["0 h"]
"""
