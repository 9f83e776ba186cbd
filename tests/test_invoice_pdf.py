"""The PDF invoice as a finance lead sends it: parties and their tax registrations, payment
instructions in the invoice's currency, amounts and dates as the community's locale writes them,
names instead of ids, the markup apart from the costs passed through at cost, totals and payment
on the pages with the lines, any script in names, and PDF/A-3b with the lines embedded as CSV.

Each test renders an invoice priced from a small config made up here, and reads the PDF back.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from pypdf import PdfReader

from billing.config import Config
from billing.metrics import Metrics
from billing.pricing import price_invoice
from billing.records import Attributed, Bucket, Month
from billing.render.csv_files import LINE_COLUMNS, invoice_lines_text
from billing.render.pdf import TEMPLATES, invoice_html, write_invoice_pdf

from builders import cost_row

SEPTEMBER = Month(2022, 9)
US_BANK = "ACH to Example Community Bank, routing 000000000"
UK_BANK = "Faster Payments, sort code 00-00-00"


def config(community: dict | None = None, contract: dict | None = None, org: dict | None = None,
           invoices: dict | None = None, pools=()) -> Config:
    hub = {"id": "hub", "name": "Hub", "currency": "USD", "contract": contract or {}, **(community or {})}
    return Config.model_validate({
        "organisation": {"name": "Org", "payment_instructions": {"USD": US_BANK, "GBP": UK_BANK, "EUR": "SEPA",
                                                                 "JPY": "Zengin"}, **(org or {})},
        "invoices": invoices or {},
        "sources": [{"type": "gcp-export-files", "id": "gcp", "path": "."}],
        "communities": [hub],
        "shared_pools": list(pools),
    })


def render(cfg: Config, tmp_path, rows=(), shares=()):
    direct = [Attributed(r, Bucket("community", "hub"), 0) for r in rows]
    invoice = price_invoice(cfg, cfg.communities[0], SEPTEMBER, direct, list(shares), list(shares),
                            Metrics(None, SEPTEMBER))
    path = tmp_path / "invoice.pdf"
    write_invoice_pdf(path, invoice, cfg.communities[0], cfg)
    return invoice, PdfReader(path)


def pages(reader: PdfReader) -> list[str]:
    return [" ".join(page.extract_text().split()) for page in reader.pages]


def text(reader: PdfReader) -> str:
    return " ".join(pages(reader))


FEE = {"fees": [{"description": "Service fee", "amount": Decimal("1234.555")}]}


def test_amounts_and_dates_are_written_as_the_communitys_locale_does(tmp_path):
    _, pdf = render(config({"currency": "EUR", "locale": "de_DE"}, FEE), tmp_path)
    words = text(pdf)
    assert "Service fee 1.234,56" in words              # half-up, then as de_DE writes numbers
    assert "Total due 1.234,56 €" in words              # the currency once, where de_DE puts it
    assert "Billing period 1. September 2022 to 30. September 2022" in words
    assert "Due date 31. Oktober 2022" in words
    assert "EUR EUR" not in words and "€ EUR" not in words


@pytest.mark.parametrize("currency, locale, total", [
    ("USD", "en_US", "Total due $1,234.56"),
    ("GBP", "en_GB", "Total due £1,234.56"),
    ("JPY", "ja_JP", "Total due ￥1,235"),               # no minor unit
])
def test_the_total_due_carries_its_currency_once(tmp_path, currency, locale, total):
    _, pdf = render(config({"currency": currency, "locale": locale}, FEE), tmp_path)
    assert total in text(pdf)
    assert not re.search(r"Total due \(", text(pdf))


def test_a_gbp_invoice_carries_the_gbp_payment_instructions_only(tmp_path):
    _, pdf = render(config({"currency": "GBP", "locale": "en_GB"}, FEE), tmp_path)
    assert UK_BANK in text(pdf) and US_BANK not in text(pdf)


def test_a_currency_without_payment_instructions_is_a_config_error():
    with pytest.raises(ValueError, match=r"organisation.payment_instructions has no instructions for CAD \(community "
                                         r"'hub' is billed in CAD\)"):
        config({"currency": "CAD"})


@pytest.mark.parametrize("instructions, problem", [
    ({"USD": "ACH", "GBX": "BACS"}, "names 'GBX', which is not an ISO 4217 currency code"),
    ({"USD": 12}, "must be one text for every invoice, or one text per currency"),
    ({}, "must be one text for every invoice, or one text per currency"),
])
def test_payment_instructions_name_iso_currencies(instructions, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        config(org={"payment_instructions": instructions})


def test_tax_registrations_and_the_purchase_order_are_printed_when_set(tmp_path):
    cfg = config({"tax_id": "VAT GB123456789", "purchase_order": "PO-77"}, FEE,
                 org={"tax_id": ["EIN 12-3456789", "VAT GB987654321"]})
    _, pdf = render(cfg, tmp_path)
    words = text(pdf)
    assert "Tax ID: EIN 12-3456789 · VAT GB987654321" in words   # the seller's
    assert "Tax ID: VAT GB123456789" in words                    # the buyer's
    assert "Purchase order PO-77" in words and "quoting its number and purchase order PO-77" in words

    _, plain = render(config(None, FEE), tmp_path)
    assert "Tax ID" not in text(plain) and "Purchase order" not in text(plain)


def test_a_contracts_purchase_order_wins_over_the_communitys(tmp_path):
    _, pdf = render(config({"purchase_order": "PO-OLD"}, {**FEE, "purchase_order": "PO-2022"}), tmp_path)
    assert "Purchase order PO-2022" in text(pdf) and "PO-OLD" not in text(pdf)


def test_the_markup_and_the_limit_are_outside_the_costs_passed_through_at_cost(tmp_path):
    cfg = config(None, {"cloud": {"markup_percent": 10, "limit": 100, "cap_at_limit": True}})
    _, pdf = render(cfg, tmp_path, [cost_row(cost="150")])
    words = text(pdf)
    passed = words.index("Cloud costs, passed through at cost")
    management = words.index("Cloud management and limits")
    assert passed < words.index("Google Cloud: Compute Engine") < words.index("Passed through at cost 150.00") < management
    assert management < words.index("Cloud management markup (10% of 150.00) 15.00")
    assert management < words.index("Cloud costs above the monthly limit of 100.00 (not charged) -65.00")
    assert "Cloud costs subtotal 100.00" in words


def test_ids_print_as_their_display_names(tmp_path):
    cfg = config(None, {"cloud": {"withhold_credits": ["PROMOTION", "SPECIAL_GRANT"]},
                        "fees": [{"description": "Per-user fee", "metric": "monthly-active-users",
                                  "tiers": [{"unit_price": 1}]}]},
                 invoices={"display_names": {"SPECIAL_GRANT": "Research grant credit"}})
    metrics = tmp_path / "metrics.csv"
    metrics.write_text("community,metric,value\nhub,monthly-active-users,1200\n")
    invoice = price_invoice(cfg, cfg.communities[0], SEPTEMBER,
                            [Attributed(cost_row(cost="10", credits=[("PROMOTION", "-1"), ("SPECIAL_GRANT", "-2")]),
                                        Bucket("community", "hub"), 0)], [], [], Metrics(metrics, SEPTEMBER))
    path = tmp_path / "names.pdf"
    write_invoice_pdf(path, invoice, cfg.communities[0], cfg)
    words = text(PdfReader(path))
    assert "Per-user fee: 1,200 monthly active users" in words
    assert "do not reduce this invoice: Promotional credit, Research grant credit." in words
    assert "PROMOTION" not in words and "monthly-active-users" not in words


def test_names_in_chinese_and_japanese_print_in_a_font_that_has_them(tmp_path):
    name = "北京开放数据社区 オープンハブ"
    _, pdf = render(config({"name": name, "address": ["東京都千代田区"]}, FEE), tmp_path)
    assert name in text(pdf) and "東京都千代田区" in text(pdf)
    fonts = {str(font.get_object()["/BaseFont"]) for page in pdf.pages
             for font in page["/Resources"]["/Font"].values()}
    assert any("Droid-Sans-Fallback" in font for font in fonts), fonts  # not DejaVu Sans, which has no CJK glyphs


def test_the_pdf_is_pdf_a_3b_with_its_lines_embedded_as_csv(tmp_path):
    invoice, pdf = render(config(None, FEE), tmp_path, [cost_row(cost="12.345"), cost_row(service="=cmd", cost="1")])
    root = pdf.trailer["/Root"]
    xmp = root["/Metadata"].get_object().get_data().decode()
    assert 'pdfaid:part="3"' in xmp and 'pdfaid:conformance="B"' in xmp
    (intent,) = [i.get_object() for i in root["/OutputIntents"]]
    assert intent["/S"] == "/GTS_PDFA1" and intent["/DestOutputProfile"].get_object().get_data()[36:40] == b"acsp"
    assert list(pdf.attachments) == ["DRAFT-202209-hub-lines.csv"]
    (embedded,) = pdf.attachments["DRAFT-202209-hub-lines.csv"]
    assert embedded.decode() == invoice_lines_text(invoice)
    header, *rows = embedded.decode().splitlines()
    assert header.split(",") == list(LINE_COLUMNS) and len(rows) == len(invoice.lines)
    assert ",'=cmd,USD," in embedded.decode()  # the service column, neutralised like every CSV
    (spec,) = [s.get_object() for s in root["/AF"]][:1]
    assert spec["/AFRelationship"] == "/Data"
    assert spec["/EF"]["/F"].get_object()["/Subtype"] == "/text/csv"


def test_the_same_invoice_gives_the_same_bytes(tmp_path):
    cfg = config({"name": "北京"}, FEE)
    render(cfg, tmp_path)
    first = (tmp_path / "invoice.pdf").read_bytes()
    render(cfg, tmp_path)
    assert (tmp_path / "invoice.pdf").read_bytes() == first


def test_a_draft_asks_for_no_payment_and_a_final_invoice_does(tmp_path):
    cfg = config({}, FEE)
    draft, pdf = render(cfg, tmp_path)
    said = " ".join(text(pdf).split())
    assert ("A draft for review, not for payment: once final, this invoice asks for $1,234.56 by October 31, 2022, "
            "quoting its number.") in said
    assert "Please pay" not in said
    final = draft._replace(number="INV-2022-00001", status="finalized")
    write_invoice_pdf(tmp_path / "final.pdf", final, cfg.communities[0], cfg)
    said = " ".join(text(PdfReader(tmp_path / "final.pdf")).split())
    assert "Please pay $1,234.56 by October 31, 2022, quoting INV-2022-00001." in said
    assert "not for payment" not in said


def test_a_long_invoice_flows_with_repeated_headers_and_ends_with_lines_beside_its_totals(tmp_path):
    rows = [cost_row(service=f"Service {n:03d}", cost=str(n)) for n in range(1, 91)]
    _, pdf = render(config({"address": ["A", "B"]}, {**FEE, "tax": {"description": "VAT", "rate_percent": 20}}),
                    tmp_path, rows)
    texts = pages(pdf)
    assert len(texts) >= 3
    for page in texts[:-1]:  # every page a table flows onto has its header row
        assert "Provider and service Cost Credits Amount" in page
    last = texts[-1]
    assert "Total due" in last and "A draft for review, not for payment: once final, this invoice asks for" in last
    assert re.search(r"Service fee|Google Cloud: Service 0\d\d", last)  # some lines are on the page with the totals


def test_every_demo_invoice_fits_its_totals_and_payment_on_the_pages_with_its_lines(tmp_path, demo_config_path):
    from click.testing import CliRunner
    from billing.cli import main
    result = CliRunner().invoke(main, ["run", "--month", "2022-09", "--config", str(demo_config_path),
                                       "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for path in sorted((tmp_path / "2022-09").glob("invoice-*.pdf")):
        texts = pages(PdfReader(path))
        assert "Total due" in texts[-1] and "not for payment: once final, this invoice asks for" in texts[-1], path.name
        assert re.search(r"(subtotal|Passed through at cost) [\d,.-]+ .*Total due", texts[-1]), (path.name, texts[-1])


def test_a_long_unbroken_name_or_description_wraps_and_nothing_runs_off_the_page():
    import weasyprint
    from weasyprint.formatting_structure.boxes import TextBox

    long = "Research" + "X" * 140
    cfg = config({"name": long, "address": ["Building" + "Y" * 120]},
                 {"fees": [{"description": f"Fee for {long}", "amount": 1234}]})
    invoice = price_invoice(cfg, cfg.communities[0], SEPTEMBER, [], [], [], Metrics(None, SEPTEMBER))
    document = weasyprint.HTML(string=invoice_html(invoice, cfg.communities[0], cfg), base_url=str(TEMPLATES)).render()
    assert len(document.pages) == 1
    page = document.pages[0]
    texts = [box for box in page._page_box.descendants() if isinstance(box, TextBox)]
    assert any(box.text == "1,234.00" for box in texts)
    outside = [box.text[:20] for box in texts if box.position_x + box.width > page.width + 0.5]
    assert outside == []
