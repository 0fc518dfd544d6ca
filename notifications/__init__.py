"""Customer e-mails, driven by the outbox events (above invoicing, below flows).

A dispatcher reads the OutboxEvent rows (a cursor row plus an overlap window) and writes one
CustomerEmail row per (event, kind), unique in the database; a send task delivers each row
once, under its row lock, on the documents queue. See README "Customer e-mails"."""
