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
