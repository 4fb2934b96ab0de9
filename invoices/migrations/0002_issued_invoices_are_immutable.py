"""An issued invoice never changes (SPEC §8), enforced by PostgreSQL: once it has a number, its number, money,
FX, tax, dates, parties and lines are frozen (only status and payment fields move) and it cannot be deleted.
Credit notes are frozen from creation. (SQLite, the embedded demo, relies on the services and admin.)"""

from django.db import migrations

FROZEN = [
    "number", "bill_id", "tenant_id", "period", "invoice_type", "currency", "fx_rate", "fx_rate_date", "fx_source",
    "usage_subtotal", "net", "tax_percent", "tax_label", "tax_inclusive", "tax", "total", "total_usd",
    "payment_terms_days", "seller", "buyer", "issue_date", "due_date",
]

FORWARD = f"""
CREATE OR REPLACE FUNCTION invoices_issued_immutable() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.number IS NOT NULL THEN
            RAISE EXCEPTION 'invoice % is issued and cannot be deleted', OLD.number USING ERRCODE = 'check_violation';
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.number IS NOT NULL AND ({" OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in FROZEN)}) THEN
        RAISE EXCEPTION 'invoice % is issued: its number and amounts cannot change (issue a credit note)', OLD.number
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER invoice_issued_immutable BEFORE UPDATE OR DELETE ON invoices_invoice
    FOR EACH ROW EXECUTE FUNCTION invoices_issued_immutable();

CREATE OR REPLACE FUNCTION invoices_issued_lines_frozen() RETURNS trigger AS $$
DECLARE issued text;
BEGIN
    SELECT number INTO issued FROM invoices_invoice
        WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.invoice_id ELSE NEW.invoice_id END;
    IF issued IS NOT NULL THEN
        RAISE EXCEPTION 'invoice % is issued: its lines cannot change', issued USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER invoice_lines_frozen BEFORE INSERT OR UPDATE OR DELETE ON invoices_invoiceline
    FOR EACH ROW EXECUTE FUNCTION invoices_issued_lines_frozen();

CREATE OR REPLACE FUNCTION invoices_credit_note_frozen() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'credit note % cannot be deleted', OLD.number USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.number IS DISTINCT FROM OLD.number OR NEW.amount IS DISTINCT FROM OLD.amount
        OR NEW.tax IS DISTINCT FROM OLD.tax OR NEW.invoice_id IS DISTINCT FROM OLD.invoice_id
        OR NEW.full IS DISTINCT FROM OLD.full OR NEW.reason IS DISTINCT FROM OLD.reason
        OR NEW.issue_date IS DISTINCT FROM OLD.issue_date THEN
        RAISE EXCEPTION 'credit note % cannot change', OLD.number USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER credit_note_frozen BEFORE UPDATE OR DELETE ON invoices_creditnote
    FOR EACH ROW EXECUTE FUNCTION invoices_credit_note_frozen();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS invoice_issued_immutable ON invoices_invoice;
DROP FUNCTION IF EXISTS invoices_issued_immutable();
DROP TRIGGER IF EXISTS invoice_lines_frozen ON invoices_invoiceline;
DROP FUNCTION IF EXISTS invoices_issued_lines_frozen();
DROP TRIGGER IF EXISTS credit_note_frozen ON invoices_creditnote;
DROP FUNCTION IF EXISTS invoices_credit_note_frozen();
"""


def forward(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("invoices", "0001_invoices")]
    operations = [migrations.RunPython(forward, backward)]
