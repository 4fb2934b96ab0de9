from celery import shared_task


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def invoice_render(invoice_id: int) -> int:
    """Render an issued invoice's PDF, store it and email it to the tenant's billing emails."""
    from invoices.pdf import invoice_pdf_store

    return len(invoice_pdf_store(invoice_id))


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def credit_note_render(note_id: int) -> int:
    from invoices.pdf import credit_note_pdf_store

    return len(credit_note_pdf_store(note_id))


@shared_task(acks_late=True)
def overdue_reminders() -> int:
    from invoices.services import overdue_reminders_send

    return overdue_reminders_send()
