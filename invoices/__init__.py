"""Invoices, approval, numbering, PDFs, credit notes, payments."""
