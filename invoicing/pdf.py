"""HTML -> PDF with WeasyPrint. Rendering only: what to show comes from the selectors,
storing the result from the services."""

from typing import Any

from django.template.loader import render_to_string

TEMPLATE = "invoicing/invoice_pdf.html"


def _no_network_fetcher() -> Any:
    """Resources may only be inline (data: URIs): rendering never reaches the network or
    the file system, whatever ends up in the document."""
    import weasyprint

    if hasattr(weasyprint, "URLFetcher"):
        return weasyprint.URLFetcher(allowed_protocols={"data"})

    def fetch(url: str, *args: Any, **kwargs: Any) -> Any:  # WeasyPrint < 66
        if not url.startswith("data:"):
            raise ValueError(f"external resource refused: {url[:80]}")
        return weasyprint.default_url_fetcher(url, *args, **kwargs)

    return fetch


def render_invoice_pdf_bytes(*, context: dict[str, Any]) -> tuple[bytes, int]:
    """Render the invoice template to an A4 PDF; returns (pdf bytes, page count)."""
    import weasyprint  # heavy: imported where it is used

    html = render_to_string(TEMPLATE, context)
    document = weasyprint.HTML(string=html, url_fetcher=_no_network_fetcher()).render()
    return document.write_pdf(), len(document.pages)


CREDIT_NOTE_TEMPLATE = "invoicing/credit_note_pdf.html"


def render_credit_note_pdf_bytes(*, context: dict[str, Any]) -> tuple[bytes, int]:
    """Render the credit note template to an A4 PDF; returns (pdf bytes, page count)."""
    import weasyprint

    html = render_to_string(CREDIT_NOTE_TEMPLATE, context)
    document = weasyprint.HTML(string=html, url_fetcher=_no_network_fetcher()).render()
    return document.write_pdf(), len(document.pages)


def credit_note_pdf(*, credit_note_id: int) -> tuple[str, bytes]:
    """An issued credit note's PDF for an e-mail attachment: (file name, bytes), the stored
    one (rendered and stored first if missing). Raises CreditNoteNotIssued while pending,
    NotFound."""
    from invoicing.selectors import credit_note_document_filename
    from invoicing.services import credit_note_pdf_store

    document = credit_note_pdf_store(credit_note_id=credit_note_id)
    return credit_note_document_filename(credit_note=document.credit_note), bytes(document.pdf)


def credit_note_pdf_bytes(*, credit_note_id: int) -> bytes:
    """The bytes of credit_note_pdf."""
    return credit_note_pdf(credit_note_id=credit_note_id)[1]


def invoice_pdf(*, invoice_id: int) -> tuple[str, bytes]:
    """An issued invoice's PDF for an e-mail attachment: (file name, bytes), as credit_note_pdf."""
    from invoicing.selectors import invoice_document_filename
    from invoicing.services import invoice_pdf_store

    document = invoice_pdf_store(invoice_id=invoice_id)
    return invoice_document_filename(invoice=document.invoice), bytes(document.pdf)
