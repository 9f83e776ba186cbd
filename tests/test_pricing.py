import datetime as dt
from decimal import Decimal

import pytest

from billing.config import InvoiceSettings
from billing.errors import DataError
from billing.pricing import price_invoice
from billing.records import Attributed, Bucket, Month

from builders import community, cost_row

SEPTEMBER = Month(2022, 9)


def attributed(*rows):
    return [Attributed(r, Bucket("community", "hub"), 0) for r in rows]


def test_readme_rounding_example():
    """Two Compute Engine groups of 10.004 and 5.003 with credits of -1.0015 make one line."""
    invoice = price_invoice(community(), SEPTEMBER, attributed(
        cost_row(cost="10.004", credits=[("SUSTAINED_USAGE_DISCOUNT", "-1.0015")], labels=[("ns", "a")]),
        cost_row(cost="5.003", labels=[("ns", "b")])), InvoiceSettings())
    [line] = invoice.lines
    assert (line.description, line.cost, line.credits, line.amount) == (
        "Google Cloud: Compute Engine", Decimal("15.01"), Decimal("-1.00"), Decimal("14.01"))


def test_lines_per_provider_and_service_tax_last_then_fees():
    invoice = price_invoice(
        community(fees=[("Service fee", "1000"), ("Support", "250.005")]), SEPTEMBER, attributed(
            cost_row(service="Kubernetes Engine", cost="3.333"),
            cost_row(service="Compute Engine", cost="2.004", account="other-project"),
            cost_row(service="Compute Engine", cost="0.72", charge_type="tax"),
            cost_row(provider="aws", account="222222222222", service="All AWS services", cost="7.125"),
            cost_row(provider="aws", account="222222222222", service="All AWS services", cost="0",
                     credits=[("Credit", "-2.5")], charge_type="credit"),
        ), InvoiceSettings())
    assert [(l.section, l.description, l.amount) for l in invoice.lines] == [
        ("cloud", "Amazon Web Services: All AWS services", Decimal("4.63")),  # 7.125 - 2.5 = 4.625
        ("cloud", "Google Cloud: Compute Engine", Decimal("2.00")),
        ("cloud", "Google Cloud: Kubernetes Engine", Decimal("3.33")),
        ("cloud", "Google Cloud: Tax", Decimal("0.72")),
        ("fees", "Service fee", Decimal("1000.00")),
        ("fees", "Support", Decimal("250.01")),
    ]
    assert invoice.cloud_costs == Decimal("10.68")
    assert invoice.fees == Decimal("1250.01")
    assert invoice.total == Decimal("1260.69")
    assert all(l.cost + l.credits == l.amount for l in invoice.lines)


def test_dates_number_and_status():
    invoice = price_invoice(community(payment_terms_days=45), SEPTEMBER, [], InvoiceSettings())
    assert invoice.number == "DRAFT-202209-hub" and invoice.status == "draft"
    assert invoice.issue_date == dt.date(2022, 10, 1)
    assert invoice.due_date == dt.date(2022, 11, 15)
    assert invoice.lines == () and invoice.total == 0


def test_costs_in_another_currency_are_refused():
    with pytest.raises(DataError, match="billed in EUR but source 'gcp-source' has costs in USD"):
        price_invoice(community(currency="EUR"), SEPTEMBER, attributed(cost_row(cost="1")), InvoiceSettings())
