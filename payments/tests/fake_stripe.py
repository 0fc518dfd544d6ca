"""A local fake of the parts of Stripe's API the adapter calls, over real HTTP.

The real `stripe` SDK talks to it (STRIPE_API_BASE = its URL). It keeps Stripe's
idempotency semantics (a request with a key already seen is answered with the stored
response, whatever happened to the first answer), records every request with its
Idempotency-Key, can stall answers past the client's timeout (the work is done, the answer
is lost: the dangerous case), serves a hosted Checkout page, and signs events the way
Stripe does (`Stripe-Signature: t=<ts>,v1=<hex HMAC-SHA256 of "<ts>.<body>">`), computed
here independently of the SDK and of the app.
"""

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

DECLINED_METHODS = {"pm_card_chargeDeclined", "pm_card_visa_chargeDeclined"}


@dataclass
class Recorded:
    method: str
    path: str
    idempotency_key: str | None
    params: dict[str, str]
    replayed: bool = False


@dataclass
class FakeStripe:
    webhook_secret: str = ""
    webhook_url: str = ""  # where the hosted page's "Pay" sends checkout.session.completed
    received: list[Recorded] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    # path prefix -> how many of the next requests to stall, and for how long
    stalls: dict[str, int] = field(default_factory=dict)
    stall_s: float = 1.5
    sent_events: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._idempotent: dict[str, tuple[int, dict[str, Any]]] = {}
        self._seq = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # --- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> "FakeStripe":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- what the tests read ----------------------------------------------------------------------

    def calls(self, path_prefix: str) -> list[Recorded]:
        return [r for r in self.received if r.method == "POST" and r.path.startswith(path_prefix)]

    def only_session(self) -> dict[str, Any]:
        (session,) = self.sessions.values()
        return session

    # --- Stripe's objects, mutated as Stripe would ----------------------------------------------

    def _id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}_test_{self._seq:06d}"

    def complete_session(self, session_id: str) -> dict[str, Any]:
        """The shopper paid on the hosted page: the session is complete, its PaymentIntent
        succeeded. Returns the session."""
        with self._lock:
            session = self.sessions[session_id]
            intent = self._new_intent(
                amount=session["amount_total"],
                currency=session["currency"],
                metadata=session["_pi_metadata"],
                status="succeeded",
            )
            session.update(status="complete", payment_status="paid", payment_intent=intent["id"])
            return session

    def decline_in_session(self, session_id: str) -> dict[str, Any]:
        """A card declined on the hosted page: its PaymentIntent failed, the session stays open."""
        with self._lock:
            session = self.sessions[session_id]
            intent = self._new_intent(
                amount=session["amount_total"],
                currency=session["currency"],
                metadata=session["_pi_metadata"],
                status="requires_payment_method",
            )
            intent["last_payment_error"] = {"code": "card_declined", "message": "Your card was declined."}
            session["payment_intent"] = intent["id"]
            return intent

    def expire_session(self, session_id: str) -> dict[str, Any]:
        with self._lock:
            session = self.sessions[session_id]
            session["status"] = "expired"
            return session

    def _new_intent(self, *, amount: int, currency: str, metadata: dict[str, str], status: str) -> dict[str, Any]:
        intent = {
            "id": self._id("pi"),
            "object": "payment_intent",
            "amount": amount,
            "amount_received": amount if status == "succeeded" else 0,
            "currency": currency,
            "status": status,
            "metadata": dict(metadata),
            "livemode": False,
            "last_payment_error": None,
        }
        self.payment_intents[intent["id"]] = intent
        return intent

    # --- events, signed like Stripe --------------------------------------------------------------

    def event(
        self, event_type: str, obj: dict[str, Any], *, event_id: str | None = None, created: int | None = None
    ) -> dict[str, Any]:
        public = {k: v for k, v in obj.items() if not k.startswith("_")}
        with self._lock:
            event_id = event_id or self._id("evt")
        return {
            "id": event_id,
            "object": "event",
            "api_version": "2025-01-01",
            "created": created if created is not None else int(time.time()),
            "livemode": False,
            "type": event_type,
            "data": {"object": json.loads(json.dumps(public))},
        }

    def signature(self, raw: str, *, secret: str | None = None, timestamp: int | None = None) -> str:
        timestamp = int(time.time()) if timestamp is None else timestamp
        key = (secret if secret is not None else self.webhook_secret).encode()
        digest = hmac.new(key, f"{timestamp}.{raw}".encode(), hashlib.sha256).hexdigest()
        return f"t={timestamp},v1={digest}"

    def send(self, event: dict[str, Any]) -> requests.Response:
        """Deliver a signed event to webhook_url over HTTP, as Stripe does."""
        raw = json.dumps(event)
        self.sent_events.append(event)
        headers = {"Content-Type": "application/json", "Stripe-Signature": self.signature(raw)}
        return requests.post(self.webhook_url, data=raw.encode(), headers=headers, timeout=30)

    # --- the HTTP side -------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length).decode() if length else ""
        params = dict(parse_qsl(raw or parts.query, keep_blank_values=True))
        key = handler.headers.get("Idempotency-Key")
        record = Recorded(method, parts.path, key, params)
        with self._lock:
            self.received.append(record)
            stall = self.stalls.get(parts.path, 0) > 0
            if stall:
                self.stalls[parts.path] -= 1
        if parts.path == "/favicon.ico":  # the browser asks the hosted page's origin for one
            handler.send_response(204)
            handler.end_headers()
            return
        if parts.path.startswith("/checkout/pay/"):
            self._hosted_page(handler, method, parts.path.rsplit("/", 1)[-1])
            return
        with self._lock:
            if key and key in self._idempotent:
                record.replayed = True
                status, body = self._idempotent[key]
            else:
                status, body = self._route(method, parts.path, params)
                if key and method == "POST":
                    self._idempotent[key] = (status, body)
        if stall:  # the work is done and stored; the answer arrives after the client gave up
            time.sleep(self.stall_s)
        payload = json.dumps(body).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.send_header("Request-Id", f"req_{self._seq}")
            if record.replayed:
                handler.send_header("Idempotent-Replayed", "true")
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _route(self, method: str, path: str, p: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if method == "POST" and path == "/v1/checkout/sessions":
            return 200, self._create_session(p)
        if method == "POST" and path.startswith("/v1/checkout/sessions/") and path.endswith("/expire"):
            session = self.sessions.get(path.split("/")[4])
            if session is None:
                return 404, _error("invalid_request_error", "resource_missing", "No such checkout.session")
            if session["status"] != "open":
                return 400, _error("invalid_request_error", "checkout_session_not_open", "Session is not open")
            session["status"] = "expired"
            return 200, _public(session)
        if method == "GET" and path.startswith("/v1/checkout/sessions/"):
            session = self.sessions.get(path.split("/")[4])
            return (200, _public(session)) if session else (404, _error("invalid_request_error", "resource_missing"))
        if method == "POST" and path == "/v1/payment_intents":
            return self._create_intent(p)
        if method == "POST" and path == "/v1/refunds":
            return self._create_refund(p)
        return 404, _error("invalid_request_error", "unknown_endpoint", f"Unrecognized request URL ({path})")

    def _create_session(self, p: dict[str, str]) -> dict[str, Any]:
        quantity = int(p["line_items[0][quantity]"])
        unit_amount = int(p["line_items[0][price_data][unit_amount]"])
        session_id = self._id("cs")
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": p["mode"],
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": quantity * unit_amount,
            "currency": p["line_items[0][price_data][currency]"],
            "client_reference_id": p.get("client_reference_id"),
            "metadata": _sub(p, "metadata"),
            "payment_intent": None,
            "success_url": p["success_url"],
            "cancel_url": p["cancel_url"],
            "expires_at": int(p["expires_at"]),
            "url": f"{self.url}/checkout/pay/{session_id}",
            "livemode": False,
            "_pi_metadata": _sub(p, "payment_intent_data[metadata]"),
        }
        self.sessions[session_id] = session
        return _public(session)

    def _create_intent(self, p: dict[str, str]) -> tuple[int, dict[str, Any]]:
        declined = p.get("payment_method") in DECLINED_METHODS
        intent = self._new_intent(
            amount=int(p["amount"]),
            currency=p["currency"],
            metadata=_sub(p, "metadata"),
            status="requires_payment_method" if declined else "succeeded",
        )
        intent["payment_method"] = p.get("payment_method")
        if declined:
            intent["last_payment_error"] = {"code": "card_declined", "message": "Your card was declined."}
            error = _error("card_error", "card_declined", "Your card was declined.")
            error["error"]["payment_intent"] = intent
            return 402, error
        return 200, intent

    def _create_refund(self, p: dict[str, str]) -> tuple[int, dict[str, Any]]:
        intent = self.payment_intents.get(p.get("payment_intent", ""))
        if intent is None:
            return 404, _error("invalid_request_error", "resource_missing", "No such payment_intent")
        refunded = sum(r["amount"] for r in self.refunds.values() if r["payment_intent"] == intent["id"])
        amount = int(p.get("amount") or intent["amount_received"] - refunded)
        if amount <= 0 or refunded + amount > intent["amount_received"]:
            return 400, _error("invalid_request_error", "amount_too_large", "Refund amount is greater than unrefunded")
        refund = {
            "id": self._id("re"),
            "object": "refund",
            "amount": amount,
            "currency": intent["currency"],
            "payment_intent": intent["id"],
            "status": "succeeded",
            "metadata": _sub(p, "metadata"),
        }
        self.refunds[refund["id"]] = refund
        return 200, refund

    def _hosted_page(self, handler: BaseHTTPRequestHandler, method: str, session_id: str) -> None:
        session = self.sessions.get(session_id)
        if session is None:
            handler.send_error(404)
            return
        if method == "GET":
            amount = f"{session['amount_total'] / 100:.2f} {session['currency'].upper()}"
            page = (
                f"<!doctype html><title>Fake Stripe Checkout</title><h1>Fake Stripe Checkout</h1>"
                f"<p data-testid='fake-stripe-amount'>{amount}</p>"
                f"<form method='post'><button id='fake-stripe-pay' type='submit'>Pay</button></form>"
            ).encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "text/html; charset=utf-8")
            handler.send_header("Content-Length", str(len(page)))
            handler.end_headers()
            handler.wfile.write(page)
            return
        completed = self.complete_session(session_id)
        self.send(self.event("checkout.session.completed", completed))
        handler.send_response(303)
        handler.send_header("Location", completed["success_url"])
        handler.send_header("Content-Length", "0")
        handler.end_headers()


def _sub(params: dict[str, str], prefix: str) -> dict[str, str]:
    """`metadata[a]=1&metadata[b]=2` -> {"a": "1", "b": "2"}."""
    start = f"{prefix}["
    return {k[len(start) : -1]: v for k, v in params.items() if k.startswith(start) and "][" not in k[len(start) :]}


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def _error(kind: str, code: str, message: str = "") -> dict[str, Any]:
    return {"error": {"type": kind, "code": code, "message": message or code}}


@contextmanager
def fake_stripe(*, webhook_secret: str, webhook_url: str = "") -> Iterator[FakeStripe]:
    with FakeStripe(webhook_secret=webhook_secret, webhook_url=webhook_url) as fake:
        yield fake
