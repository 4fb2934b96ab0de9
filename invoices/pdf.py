"""Invoice and credit-note PDFs with WeasyPrint: A4, English and 简体中文 labels, page numbers.

Fast by design: one CJK font named explicitly (no font-fallback search across the system), its FontConfiguration
and the stylesheet built once per worker process, and a template without remote resources."""

from __future__ import annotations

import re
import threading
from functools import cache
from typing import Any

from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation

from billing.models import BillLine
from billing.money import money_str
from invoices.models import CreditNote, Invoice

FONT_FAMILY = "Noto Sans CJK SC"  # Debian fonts-noto-cjk


@cache
def _bucket_label(bucket: str) -> str:
    """A token bucket as the bilingual invoice names it (Cached input 缓存输入), from the bill line's own label and its
    translation."""
    if bucket not in BillLine.Bucket.values:
        return bucket
    label = BillLine.Bucket(bucket).label
    with translation.override("en"):
        english = str(label)
    with translation.override("zh-hans"):
        return f"{english} {label}"


@cache
def _weasy() -> tuple[Any, Any]:
    from weasyprint import CSS
    from weasyprint.text.fonts import FontConfiguration

    fonts = FontConfiguration()
    css = CSS(string=render_to_string("invoices/pdf.css", {"font": FONT_FAMILY}), font_config=fonts)
    return fonts, css


# The fonts this process holds (Pango's font map) are not safe to use from two threads at once: renders in one
# process — a threaded server, tasks run in the caller's threads — take turns. A process renders one at a time anyway
# under the sync workers and prefork Celery that Meterline runs.
_RENDER_LOCK = threading.Lock()


def html_to_document(html: str) -> Any:
    """The laid-out document (weasyprint.Document: its pages; `html_to_pdf` for its PDF), with the fonts and
    stylesheet this process holds."""
    with _RENDER_LOCK:
        return _layout(html)


def _layout(html: str) -> Any:
    from weasyprint import HTML

    fonts, css = _weasy()
    return HTML(string=html).render(stylesheets=[css], font_config=fonts)


def html_to_pdf(html: str) -> bytes:
    with _RENDER_LOCK:
        return _layout(html).write_pdf()


def _amount(value: Any, currency: str) -> str:
    return money_str(value, currency) if value is not None else ""


def _tax_caption(invoice: Invoice) -> str:
    """The tax line's name with its rate, once: a label that already states the rate (增值税 6%) is kept as it is."""
    number = f"{invoice.tax_percent.normalize():f}"
    label = invoice.tax_label or "Tax 税"
    states_it = re.search(rf"(?<![\d.]){re.escape(number)}\s*%", label)
    return label if states_it else f"{label} · {number}%"


def invoice_html(invoice: Invoice) -> str:
    lines = []
    for line in invoice.lines.all():
        lines.append(
            {
                "line": line,
                "bucket": _bucket_label(line.bucket),
                "quantity": f"{line.quantity:,}" if line.quantity is not None else "",
                "amount": _amount(line.amount, invoice.currency),
                "amount_usd": f"{line.amount_usd:.6f}" if line.amount_usd is not None else "",
                "unit_price": f"{line.unit_price.normalize():f}" if line.unit_price is not None else "",
            }
        )
    return render_to_string(
        "invoices/invoice_pdf.html",
        {
            "invoice": invoice,
            "lines": lines,
            "money": {
                name: _amount(getattr(invoice, name), invoice.currency)
                for name in ("usage_subtotal", "net", "tax", "total", "amount_paid", "amount_credited")
            },
            "tax_caption": _tax_caption(invoice),
            "fx_rate": f"{invoice.fx_rate:.6f}",
            "total_usd": f"{invoice.total_usd:.6f}",
            "by_project": [{**row, "tokens": f"{row['tokens']:,}"} for row in invoice.bill.by_project],
        },
    )


def credit_note_html(note: CreditNote) -> str:
    invoice = note.invoice
    return render_to_string(
        "invoices/credit_note_pdf.html",
        {
            "note": note,
            "invoice": invoice,
            "amount": _amount(note.amount, invoice.currency),
            "tax": _amount(note.tax, invoice.currency),
            "net": _amount(note.amount - note.tax, invoice.currency),
            "tax_caption": _tax_caption(invoice),
        },
    )


def invoice_pdf_store(invoice_id: int) -> bytes:
    invoice = Invoice.objects.select_related("tenant").get(pk=invoice_id)
    pdf = html_to_pdf(invoice_html(invoice))
    Invoice.objects.filter(pk=invoice_id).update(pdf=pdf, pdf_rendered_at=timezone.now())
    if invoice.emailed_at is None:
        _email(invoice, pdf)
    return pdf


def credit_note_pdf_store(note_id: int) -> bytes:
    note = CreditNote.objects.select_related("invoice", "invoice__tenant").get(pk=note_id)
    pdf = html_to_pdf(credit_note_html(note))
    CreditNote.objects.filter(pk=note_id).update(pdf=pdf, pdf_rendered_at=timezone.now())
    recipients = list(note.invoice.buyer.get("billing_emails") or [])
    if recipients:
        message = EmailMessage(
            subject=f"Credit note {note.number} for invoice {note.invoice.number} / 红字发票",
            body=f"Credit note {note.number}: {note.amount} {note.invoice.currency}. Reason: {note.reason}",
            to=recipients,
        )
        message.attach(f"{note.number}.pdf", pdf, "application/pdf")
        message.send()
    return pdf


def _email(invoice: Invoice, pdf: bytes) -> None:
    recipients = list(invoice.buyer.get("billing_emails") or [])
    if not recipients:
        return
    message = EmailMessage(
        subject=f"Invoice {invoice.number} — {invoice.period:%Y-%m} / 发票",
        body=(
            f"Invoice {invoice.number} for {invoice.period:%Y-%m}: {money_str(invoice.total, invoice.currency)} "
            f"{invoice.currency}, due {invoice.due_date}. The PDF is attached.\n"
            f"附件为 {invoice.period:%Y-%m} 的发票 {invoice.number}，金额 {money_str(invoice.total, invoice.currency)} "
            f"{invoice.currency}，付款截止日 {invoice.due_date}。"
        ),
        to=recipients,
    )
    message.attach(f"{invoice.number}.pdf", pdf, "application/pdf")
    with transaction.atomic():
        message.send()
        Invoice.objects.filter(pk=invoice.pk).update(emailed_at=timezone.now())
