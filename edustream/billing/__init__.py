"""School fee payment: bills, orders, receipts and remittance.

Modules, one concept each:

- ``bills``: a published bill, its fee items and its receipt series;
- ``orders``: the order state machine that turns payment events into
  decisions (issue a receipt, issue a red-letter receipt, raise an exception
  for a person, hold a refund, ignore);
- ``receipts``: electronic fiscal receipts and red-letter receipts;
- ``numbering``: consecutive receipt numbers per receipt code, in Redis;
- ``issuing``: the order flow's outputs, numbered in groups and sent in the
  order they were decided;
- ``remittance``: per collecting unit and business day, the batch remitted
  to the treasury.

Everything here except ``numbering`` and ``issuing`` is pure: no I/O, no
clock. A replay of
the same inputs in the same order produces the same outputs, with the same
ids, which is what makes at-least-once delivery safe.
"""
