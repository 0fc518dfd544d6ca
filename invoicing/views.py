"""The public payment-link page: no login, the signed token is the capability. Thin: a
selector resolves the link, one service call per POST, then a redirect."""

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache

from common.errors import ApplicationError
from common.idempotency import (
    IdempotencyInProgress,
    IdempotentReplay,
    idempotency_abandon,
    idempotency_begin,
    idempotency_complete,
    idempotency_fingerprint,
    idempotency_owner,
)
from common.models import IdempotencyKey
from invoicing.forms import LinkPayForm
from invoicing.selectors import PaymentLinkView, invoice_document_filename, payment_link_resolve
from invoicing.services import invoice_pay_by_link, invoice_pdf_store
from payments.providers import payment_provider

# HTTP status of the page per link state: the page always explains itself in words.
_STATUS = {"payable": 200, "processing": 200, "paid": 200, "void": 410, "expired": 410, "invalid": 404}


def _render(request: HttpRequest, link: PaymentLinkView, form: LinkPayForm | None, status: int | None = None):  # type: ignore[no-untyped-def]
    lines = list(link.invoice.lines.all()) if link.invoice is not None else []
    context = {"link": link, "form": form, "invoice": link.invoice, "token_state": link.state, "lines": lines}
    return render(request, "invoicing/pay.html", context, status=status or _STATUS[link.state])


@never_cache
def invoice_pay(request: HttpRequest, token: str) -> HttpResponse:
    link = payment_link_resolve(token=token)
    methods = payment_provider().payment_methods()
    if request.method != "POST":
        form = None
        if link.state == "payable":
            form = LinkPayForm(initial={"idempotency_key": LinkPayForm.new_key()}, link=link, methods=methods)
        return _render(request, link, form)

    # The form's key, claimed first: a double click or a resubmit gets the first answer.
    begun: IdempotencyKey | None = None
    key = request.POST.get("idempotency_key", "")
    if key:
        payload = {k: request.POST.get(k, "") for k in ("amount", "payment_method")}
        try:
            claimed = idempotency_begin(
                owner=idempotency_owner(request=request),
                scope="invoice-pay-link",
                key=key,
                fingerprint=idempotency_fingerprint(method="POST", path=request.path, payload=payload),
            )
        except IdempotencyInProgress:
            messages.info(request, "Your payment is being started.")
            return redirect("invoice-pay", token=token)
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect("invoice-pay", token=token)
        if isinstance(claimed, IdempotentReplay):
            return redirect("invoice-pay", token=token)
        begun = claimed
    if link.state != "payable":
        if begun is not None:
            idempotency_abandon(record=begun)
        messages.error(request, link.message)
        return _render(request, link, None, status=409 if _STATUS[link.state] == 200 else None)
    form = LinkPayForm(request.POST, link=link, methods=methods)
    if begun is None or not form.is_valid():
        if begun is not None:
            idempotency_abandon(record=begun)
        return _render(request, link, form, status=400)
    data = form.cleaned_data
    try:
        attempt = invoice_pay_by_link(token=token, amount=data["amount"], payment_method=data["payment_method"])
    except ApplicationError as exc:
        idempotency_abandon(record=begun)
        messages.error(request, exc.message)
        fresh = payment_link_resolve(token=token)
        retry = None
        if fresh.state == "payable":
            retry = LinkPayForm(initial={"idempotency_key": LinkPayForm.new_key()}, link=fresh, methods=methods)
        return _render(request, fresh, retry, status=exc.status_code)
    except BaseException:
        idempotency_abandon(record=begun)
        raise
    idempotency_complete(record=begun, status=201, body={"attempt_id": attempt.pk})
    messages.success(request, f"Payment of {attempt.amount} {attempt.currency} started.")
    return redirect("invoice-pay", token=token)


@never_cache
def invoice_pay_pdf(request: HttpRequest, token: str) -> HttpResponse:
    """The invoice's PDF for whoever holds a valid (unexpired, untampered) link."""
    link = payment_link_resolve(token=token)
    if link.invoice is None:
        raise Http404(link.message)
    document = invoice_pdf_store(invoice_id=link.invoice.pk)
    response = HttpResponse(bytes(document.pdf), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{invoice_document_filename(invoice=link.invoice)}"'
    return response
