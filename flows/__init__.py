"""Flows that span apps, above every app: one module per flow, one transaction each.

The apps form a one-way graph (imports inside functions included), checked by
flows/tests/test_layers.py:

    common <- outbox <- inventory <- orders <- payments <- invoicing <- notifications <- flows <- config

(notifications: customer e-mails, read from the outbox events; nothing below imports it.)

A lower app never imports a higher one. Where a lower app's entry point must start a higher
one's work, it takes an explicit callable (payments' `amount_policy` and `on_succeeded`, the
draft-order API's and admin's `finalize`, the sign-in view's `after_login`), and the routes
and admin classes that hand those callables in live here (flows/urls.py, urls_api.py,
admin.py). A higher app may call a lower one's services directly (invoicing voids an
invoice and cancels its order; a payment link starts a payment attempt).

Flows:
- order_paid: money arrived -> order paid + stock committed + invoice created (numbered
  after commit by the worker); a partial payment of a staff-billed invoice only re-renders it.
- draft_finalize: staff draft -> stock held, order placed, invoice created.
- order_cancel: unpaid -> cancelled, reservations released (refused while a payment is
  processing); paid and not shipped (staff) -> a full refund with restock, pending.
- refund_succeeded: the provider gave money back -> order partially_refunded / refunded /
  cancelled, credit note created (numbered after commit), restocked units on hand.

LOCK ORDER (every row any flow locks, always in this order; a flow takes a subset, never
goes back up the list):

    1. cart            orders.locks.cart_lock (cart merge: both carts by id), cart_lock_of_user
                       (checkout: the shopper's one cart),
                       cart_touch (adding a line: the UPDATE takes the same row lock)
    2. draft order     orders.locks.draft_lock (draft edits, finalize)
    3. order           orders.locks.order_lock (payments, webhooks, void, expiry, ship, cancel,
                       refund create: the refund cap is checked under this lock)
    4. payment attempt payments.locks.attempt_lock (webhooks, charge requests, timeouts,
                       the attempt a refund gives back)
    5. refund          payments.locks.refund_lock (refund webhooks, submit failures)
    6. invoice         invoicing.locks.invoice_lock / invoice_lock_for_order (numbering,
                       void, overdue, payment amounts against an invoice)
    7. credit note     invoicing (created in the refund-succeeded flow, one per refund; the
                       numbering worker claims credit notes alone, SKIP LOCKED, then 10.)
    8. reservations    inventory.locks.reservations_finish_active (the order's own, under its
                       lock: one UPDATE ... RETURNING)
    9. stock           inventory.services.stock_reserve: conditional UPDATEs by product id;
                       inventory.restock.stock_restock (refund restock) likewise
    10. number sequence invoicing.services.sequence_take_next: one UPDATE ... RETURNING, last,
                       held for the rest of the numbering transaction (the one hot lock)

Sweepers that must not wait (expiry, payment timeouts) take the order with SKIP LOCKED and
see a busy one on their next run. The simulated provider's deliveries are the provider's own
rows, locked alone (SKIP LOCKED) and never together with the shop's. Customer e-mails lock
their own rows alone too: the dispatcher its cursor row, a send one CustomerEmail row
(notifications/services.py), never with any row of the list above.
"""
