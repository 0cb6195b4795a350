"""Supervised funds (资金监管). Escrow never reads contract tables: the contracts context
hands a completed contract over (``notices.create_payment_notices``) and asks for refunds.

- ``accounts``: supervised accounts per project, reviewed by a regulator; what one holds.
- ``notices``: payment notices (资金缴款通知单), who may read them, messages to buyers.
- ``bank_events``: the bank's signed webhooks (payments, completed refunds and releases),
  applied once per bank transaction; suspense payments matched by a regulator.
- ``instructions``: refunds on cancellation, releases to the developer within the key
  supervised amount; ``statements``: account statements and suspense.
- ``ledger``: the double-entry ledger; ``reconcile``: its checks; ``signature``: webhook
  signatures.

Ledger flows (S = a supervised account, C = a contract):

- payment for a notice of C into S:   Dr supervised:S      Cr contract:C
- payment nobody can match, into S:   Dr supervised:S      Cr suspense:S
- payment into an unknown account:    Dr bank_clearing     Cr suspense:unmatched
- refund instructed on cancellation:  Dr contract:C        Cr buyer_refunds:S
- refund confirmed by the bank:       Dr buyer_refunds:S   Cr supervised:S
- release confirmed by the bank:      Dr developer_payouts:S  Cr supervised:S

supervised:S is the bank balance of S; it can never go below zero, and a release is only
approved while what stays is at least the key supervised amount of its milestone.
"""
