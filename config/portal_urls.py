"""The portal's pages, one namespace ("portal"), each app contributing its own."""

from billing.urls import urlpatterns as billing_pages
from invoices.urls import urlpatterns as invoice_pages
from metering.urls import urlpatterns as metering_pages
from tenants.urls import urlpatterns as tenant_pages

urlpatterns = [*tenant_pages, *metering_pages, *billing_pages, *invoice_pages]
