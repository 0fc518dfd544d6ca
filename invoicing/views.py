"""The public payment-link page: no login, the signed token is the capability. Thin: a
selector resolves the link, one service call per POST, then a redirect."""

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache

from common.errors import ApplicationError
from common.idempotency import idempotent_page
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

    # The key is claimed before the link's state is read: a double click or a resubmit gets
    # the first answer even though the first submit made the link "processing".
    payload = {k: request.POST.get(k, "") for k in ("amount", "payment_method")}
    key = request.POST.get("idempotency_key")
    with idempotent_page(request=request, scope="invoice-pay-link", key=key, payload=payload) as page:
        if page.replay is not None:
            return redirect("invoice-pay", token=token)
        if page.in_progress:
            messages.info(request, "Your payment is being started.")
            return redirect("invoice-pay", token=token)
        if link.state != "payable":  # also with a refused key: the page says why nothing can be paid
            messages.error(request, link.message)
            return _render(request, link, None, status=409 if _STATUS[link.state] == 200 else None)
        form = LinkPayForm(request.POST, link=link, methods=methods)
        if not form.is_valid():  # a refused key shows with the form, which gets a fresh one
            form.renew_key()
            return _render(request, link, form, status=400)
        if page.refusal:  # the key was used with other details
            messages.error(request, page.refusal)
            return redirect("invoice-pay", token=token)
        data = form.cleaned_data
        try:
            attempt = invoice_pay_by_link(token=token, amount=data["amount"], payment_method=data["payment_method"])
        except ApplicationError as exc:  # the key is released on leaving the block
            messages.error(request, exc.message)
            fresh = payment_link_resolve(token=token)
            retry = None
            if fresh.state == "payable":
                retry = LinkPayForm(initial={"idempotency_key": LinkPayForm.new_key()}, link=fresh, methods=methods)
            return _render(request, fresh, retry, status=exc.status_code)
        page.complete(body={"attempt_id": attempt.pk})
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
