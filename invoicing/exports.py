"""The accounting export as a streamed CSV response (the API's export.csv and the admin action)."""

import csv

from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from invoicing.models import Invoice
from invoicing.selectors import invoice_export_rows


class _Echo:
    """A file-like object whose write returns the line, for csv.writer in a streamed response."""

    def write(self, value: str) -> str:
        return value


def invoices_csv_response(*, invoices: QuerySet[Invoice], filename: str = "invoices.csv") -> StreamingHttpResponse:
    """RFC 4180 CSV (CRLF, quoted where needed, UTF-8), streamed row by row."""
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in invoice_export_rows(invoices=invoices)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response
