"""Contract orders (合同订单), from the sales office's draft to the signed contract.

- ``orders``: create a draft for a unit, issue it (document frozen, QR scene, invitations),
  void it, expire it at the end of the next natural day.
- ``signing``: buyers scan the QR code, get an SMS code bound to the document, sign or
  decline.
- ``sealing``: the seal keeper seals; the contract gets its number and password, buyers
  their SMS, escrow the contract.
- ``reads``: what parties, staff and the public may read (status, lists, timeline,
  document, evidence bundle, verification facts, the building table's statuses).
- ``queries``: what the use cases share (lookups, access checks, the timeline, answers).
- ``terms``: the typed terms that are frozen into the signed document; ``keystore``: the
  platform CA, opened on first use.
"""
