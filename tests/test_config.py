"""The config file loads exactly, or every problem is named with its file, line and path."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from billing.cli import main
from billing.config import load_config
from billing.errors import ConfigError, DataError
from billing.metrics import Metrics
from billing.records import Month

from conftest import said

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "config" / "billing.yaml"

# Line numbers below are counted in this text; each test changes one thing with ``replace``.
MINIMAL = """\
organisation:
  name: Open Hub Hosting Cooperative
  payment_instructions: Bank transfer; quote the invoice number.
sources:
  - id: gcp-export
    type: gcp-export-files
    path: data/gcp
communities:
  - id: paleohack
    name: PaleoHack
  - id: lis
    name: London Interdisciplinary School
attribution:
  - community: paleohack
    match: {gcp_project: hubs-shared-gke, gcp_label: {k8s-namespace: paleohack}}
"""
AWS_SOURCE = """\
    path: data/gcp
  - id: aws-payer
    type: aws-cost-explorer-files
    path: data/aws
    payer_account: "12345"
"""


def write_config(folder: Path, replace: dict[str, str] | None = None, text: str = MINIMAL) -> Path:
    for old, new in (replace or {}).items():
        assert old in text, f"the minimal config has no {old!r} to replace"
        text = text.replace(old, new, 1)
    path = folder / "billing.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def check_config(path: Path):
    return CliRunner().invoke(main, ["check-config", "--config", str(path)])


# --- valid files ------------------------------------------------------------------------------

def test_the_demo_config_loads_and_check_config_says_ok():
    config = load_config(DEMO_CONFIG)
    assert [c.id for c in config.communities] == [
        "paleohack", "neurohackademy", "ciroh", "oceanhackweek", "coessing", "temple", "callysto", "lis"]

    result = check_config(DEMO_CONFIG)

    assert result.exit_code == 0
    assert result.stdout == f"OK: {DEMO_CONFIG} (8 communities, 3 sources, 17 attribution rules)\n"


def test_fee_amounts_are_exact_decimals_never_floats(tmp_path):
    fees = ("    name: PaleoHack\n    contract:\n      fees:\n"
            "        - {description: Service fee, amount: 1000.10}\n"
            "        - {description: Storage fee, amount: 0.1}\n")
    config = load_config(write_config(tmp_path, {"    name: PaleoHack\n": fees}))

    service, storage = config.community("paleohack").contract.fees
    assert isinstance(service.amount, Decimal) and isinstance(storage.amount, Decimal)
    assert service.amount == Decimal("1000.10") and str(service.amount) == "1000.10"
    assert storage.amount == Decimal("0.1") and str(storage.amount) == "0.1"


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    folder = tmp_path / "config"
    folder.mkdir()
    path = write_config(folder, {"path: data/gcp": "path: ../data/gcp"}, text=MINIMAL + "output: out\n")

    config = load_config(path)

    assert config.sources[0].path == tmp_path / "data" / "gcp"
    assert config.output == folder / "out"


def test_label_keys_are_the_sorted_keys_the_rules_look_at(tmp_path):
    rules = MINIMAL + (
        "  - community: lis\n"
        "    match: {gcp_project: lis-hub, gcp_label: {app: jupyterhub, k8s-namespace: lis}}\n"
        "  - community: lis\n"
        "    match: {aws_account: \"333333333333\", aws_tag: {\"2i2c:hub-name\": lis}}\n")
    config = load_config(write_config(tmp_path, text=rules))

    assert config.label_keys("gcp") == ("app", "k8s-namespace")
    assert config.label_keys("aws") == ("2i2c:hub-name",)


# --- each problem is named with its place -------------------------------------------------------

def test_a_misspelt_key_is_named_with_its_line_and_a_suggestion(tmp_path):
    path = write_config(tmp_path, {"    name: PaleoHack\n": "    name: PaleoHack\n    contrct: {}\n"})

    assert problems(path) == (
        f"{path}:11: communities[0].contrct: unknown key 'contrct' (did you mean 'contract'?); "
        "allowed here: address, contact, contract, contracts, currency, id, locale, name, purchase_order, tax_id",)


def test_check_config_prints_the_problem_on_stderr_and_exits_2(tmp_path):
    path = write_config(tmp_path, {"    name: PaleoHack\n": "    name: PaleoHack\n    contrct: {}\n"})

    result = check_config(path)

    assert result.exit_code == 2
    assert result.stdout == ""
    assert said(result).splitlines()[:2] == [
        f"Error: {path}: 1 problem",
        f"  {path}:11: communities[0].contrct: unknown key 'contrct' (did you mean 'contract'?); "
        "allowed here: address, contact, contract, contracts, currency, id, locale, name, purchase_order, tax_id"]


@pytest.mark.parametrize("remove, expected", [
    ("  payment_instructions: Bank transfer; quote the invoice number.\n",
     "1: organisation.payment_instructions: field required"),
    ("    name: London Interdisciplinary School\n", "11: communities[1].name: field required"),
])
def test_a_missing_required_field_is_named_with_its_path(tmp_path, remove, expected):
    path = write_config(tmp_path, {remove: ""})
    assert problems(path) == (f"{path}:{expected}",)


def test_a_misspelt_required_key_is_one_problem_not_a_missing_field_and_every_name_unknown(tmp_path):
    path = write_config(tmp_path, {"communities:\n": "comunities:\n"})
    (said,) = problems(path)
    assert said.startswith(f"{path}:8: comunities: unknown key 'comunities' (did you mean 'communities'?)")
    path = write_config(tmp_path, {"communities:\n": "members:\n"})  # nothing like it: both are said
    assert [p.split(": ", 1)[1] for p in problems(path)] == [
        "communities: field required", "members: unknown key 'members'; allowed here: accounting, attribution, "
        "communities, deliver, exchange_rates, guards, invoices, ledger, metrics, organisation, output, "
        "settle_days, shared_pools, sources"]


def test_several_problems_are_all_reported_in_line_order(tmp_path):
    path = write_config(tmp_path, {
        "    name: PaleoHack\n": "    name: PaleoHack\n    contrct: {}\n",
        "  - community: paleohack\n": "  - community: paleohak\n",
        "{gcp_project: hubs-shared-gke,": "{aws_account: \"333333333333\", gcp_project: hubs-shared-gke,"})

    with pytest.raises(ConfigError) as info:
        load_config(path)

    assert info.value.message == f"{path}: 3 problems"
    assert info.value.problems == (
        f"{path}:11: communities[0].contrct: unknown key 'contrct' (did you mean 'contract'?); "
        "allowed here: address, contact, contract, contracts, currency, id, locale, name, purchase_order, tax_id",
        f"{path}:15: attribution[0].community: unknown community 'paleohak' (did you mean 'paleohack'?)",
        f"{path}:16: attribution[0].match: mixes GCP and AWS conditions; a cost row comes from one provider",
    )


@pytest.mark.parametrize("match, problem", [
    ("{gcp_project: p, provider: aws}", "provider aws contradicts the gcp_ conditions, which match gcp costs only"),
    ("{aws_account: '123456789012', sub_account: x}", "give the project or account once: sub_account, or gcp_project / aws_account"),
    ("{gcp_label: {a: b}, tag: {a: b}}", "give the labels or tags once: tag, or gcp_label / aws_tag"),
    ("{provider: Microsoft}", "'Microsoft' is not a provider name: gcp, aws, azure, oci, or another provider's name in "
                              "lower case with hyphens (as FOCUS's ProviderName, e.g. 'Oracle' -> oci)"),
    ("{tag: {}}", "an empty label or tag condition matches nothing; give key: value"),
])
def test_general_match_conditions_are_checked(tmp_path, match, problem):
    path = write_config(tmp_path, {"match: {gcp_project: hubs-shared-gke, gcp_label: {k8s-namespace: paleohack}}":
                                   f"match: {match}"})
    [found] = problems(path)
    assert found.startswith(f"{path}:15: attribution[0].match") and found.endswith(problem)


def test_a_key_given_twice_in_one_mapping_is_a_problem(tmp_path):
    path = write_config(tmp_path, {"  payment_instructions:": "  name: Open Hubs\n  payment_instructions:"})
    assert problems(path) == (f"{path}:3: organisation.name: key 'name' appears twice",)


def test_an_unknown_currency_is_named(tmp_path):
    path = write_config(tmp_path, {"    name: PaleoHack\n": "    name: PaleoHack\n    currency: USX\n"})
    (problem,) = problems(path)
    assert problem == (f"{path}:11: communities[0].currency: unknown currency 'USX': not an ISO 4217 code such as "
                       "USD, EUR, GBP, CAD")


def test_an_unknown_source_type_lists_the_known_types(tmp_path):
    path = write_config(tmp_path, {"type: gcp-export-files": "type: gcp-bigqeury"})
    assert problems(path) == (f"{path}:6: sources[0].type: unknown source type 'gcp-bigqeury'; "
                              "known: gcp-export-files, gcp-bigquery, aws-cost-explorer-files, aws-cost-explorer, focus-files, "
                              "aws-data-exports",)


def test_a_payer_account_that_is_not_12_digits_is_refused(tmp_path):
    path = write_config(tmp_path, {"    path: data/gcp\n": AWS_SOURCE})
    (problem,) = problems(path)
    assert "payer_account: '12345' must be a 12-digit AWS account id" in problem


def test_a_payer_account_problem_is_placed_at_its_own_line_and_path(tmp_path):
    path = write_config(tmp_path, {"    path: data/gcp\n": AWS_SOURCE})
    assert problems(path) == (f"{path}:11: sources[1].payer_account: '12345' must be a 12-digit AWS account id",)


def test_an_unquoted_payer_account_with_a_leading_zero_is_never_silently_changed(tmp_path):
    path = write_config(tmp_path, {"    path: data/gcp\n": AWS_SOURCE.replace('"12345"', "011111111111")})
    try:
        account = load_config(path).sources[1].payer_account
    except ConfigError:
        return  # refusing the unquoted account is as good as reading it as written
    assert account == "011111111111"


# --- files that cannot be read ------------------------------------------------------------------

def test_a_missing_config_file_is_named_and_exits_2(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.yaml")
    assert info.value.message == f"config file {tmp_path / 'absent.yaml'} not found (give one with --config PATH)"

    result = check_config(tmp_path / "absent.yaml")
    assert result.exit_code == 2
    assert "not found" in said(result)


def test_invalid_yaml_is_named_with_its_line(tmp_path):
    # The bracket opened on line 2 is never closed; YAML notices at the ':' on line 3.
    path = write_config(tmp_path, {"name: Open Hub Hosting Cooperative": "name: [Open Hub Hosting Cooperative"})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.message.startswith(f"{path}:3: not valid YAML: ")


def test_a_control_character_is_named_with_its_line(tmp_path):
    path = write_config(tmp_path, {"name: PaleoHack": "name: Paleo\x07Hack"})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.message == f"{path}:10: not valid YAML: special characters are not allowed (U+0007)"


def test_unquoted_account_ids_in_rules_are_read_as_written(tmp_path):
    rule = "    match: {aws_account: [000000000001, 222222222222]}\n"
    config = load_config(write_config(
        tmp_path, {"    match: {gcp_project: hubs-shared-gke, gcp_label: {k8s-namespace: paleohack}}\n": rule}))
    assert config.attribution[0].match.aws_account == ["000000000001", "222222222222"]


# --- shared pools and contracts ------------------------------------------------------------------

POOL = """\
shared_pools:
  - id: overhead
    description: Cluster overhead
    split: fixed
    communities: [paleohack, lis]
    percentages: {paleohack: 60, lis: 30}
"""


def test_fixed_percentages_that_do_not_add_up_to_100_are_refused(tmp_path):
    path = write_config(tmp_path, text=MINIMAL + POOL)
    assert problems(path) == (f"{path}:21: shared_pools[0].percentages: percentages add up to 90, not 100",)
    result = check_config(path)
    assert result.exit_code == 2 and "percentages add up to 90, not 100" in said(result)


def test_a_pool_naming_an_unknown_community_and_a_rule_naming_an_unknown_pool(tmp_path):
    text = MINIMAL.replace("  - community: paleohack\n", "  - shared_pool: overhed\n") + POOL.replace(
        "[paleohack, lis]", "[paleohack, lsi]").replace("lis: 30", "lsi: 40")
    path = write_config(tmp_path, text=text)
    assert problems(path) == (
        f"{path}:14: attribution[0].shared_pool: unknown shared pool 'overhed' (did you mean 'overhead'?)",
        f"{path}:20: shared_pools[0].communities[1]: unknown community 'lsi' (did you mean 'lis'?)")


CONTRACTS = """\
    contracts:
      - start: 2022-01-01
        end: 2022-09-30
        fees: [{description: Fee, amount: 100}]
      - start: 2022-09-15
        fees: [{description: Fee, amount: 200}]
"""


def test_contracts_of_one_community_that_overlap_are_refused(tmp_path):
    path = write_config(tmp_path, {"    name: PaleoHack\n": "    name: PaleoHack\n" + CONTRACTS})
    assert problems(path) == (f"{path}:15: communities[0].contracts[1]: overlaps contracts[0] from 2022-09-15 to "
                              "2022-09-30; one contract at a time",)
    result = check_config(path)
    assert result.exit_code == 2 and "communities[0].contracts[1]: overlaps contracts[0]" in said(result)


def test_contracts_that_follow_each_other_are_fine(tmp_path):
    path = write_config(tmp_path, {"    name: PaleoHack\n": "    name: PaleoHack\n" + CONTRACTS.replace(
        "start: 2022-09-15", "start: 2022-10-01")})
    assert [c.start.isoformat() for c in load_config(path).communities[0].contracts] == ["2022-01-01", "2022-10-01"]


def test_a_rule_needs_exactly_one_target_and_a_percent_fee_needs_known_fees(tmp_path):
    text = MINIMAL.replace("  - community: paleohack\n", "  - community: paleohack\n    absorbed: ours\n").replace(
        "    name: PaleoHack\n", "    name: PaleoHack\n    contract:\n      fees:\n"
        "        - {description: Surcharge, percent: 50, of: [service]}\n")
    path = write_config(tmp_path, text=text)
    assert problems(path) == (
        f"{path}:11: communities[0].contract: fee 'Surcharge' is a percentage of service, which is not the id of a "
        "flat or tiered fee of this contract",
        f"{path}:17: attribution[0]: give exactly one of community, shared_pool or absorbed")


@pytest.mark.parametrize("change, expected", [
    ({"    name: PaleoHack\n": "    name: PaleoHack\n    contract:\n      fees:\n        - description: Users\n"
      "          metric: users\n          tiers: [{up_to: 10, unit_price: 1}, {up_to: 100, unit_price: 0.5}]\n"},
     "the last tier must have no up_to"),
    ({"    name: PaleoHack\n": "    name: PaleoHack\n    contract:\n      discounts: [{description: D, amount: -50}]\n"},
     "discounts[0].amount: must be a number from 0 to 10,000,000,000,000, not -50"),
    ({"    name: PaleoHack\n": "    name: PaleoHack\n    contracts:\n      - {end: 2022-09-14}\n"
      "      - {start: 2022-09-15, currency: GBP}\n"},
     "contracts: contracts in GBP and USD; one community is billed in one currency"),
])
def test_terms_that_would_bill_wrongly_are_refused(tmp_path, change, expected):
    (problem,) = problems(write_config(tmp_path, change))
    assert expected in problem


def test_pool_percentages_outside_0_to_100_are_refused(tmp_path):
    text = MINIMAL + POOL.replace("paleohack: 60, lis: 30", "paleohack: 140, lis: -40")
    path = write_config(tmp_path, text=text)
    assert problems(path) == (
        f"{path}:21: shared_pools[0].percentages.paleohack: must be a number from 0 to 100, not 140",
        f"{path}:21: shared_pools[0].percentages.lis: must be a number from 0 to 100, not -40")


def test_two_rates_for_one_month_and_pair_are_refused(tmp_path):
    text = MINIMAL + ("exchange_rates:\n  - {month: 2022-09, from: USD, to: CAD, rate: 1.35}\n"
                      "  - {month: 2022-09, from: USD, to: CAD, rate: 1.36}\n")
    path = write_config(tmp_path, text=text)
    assert problems(path) == (f"{path}:18: exchange_rates[1]: a second USD to CAD rate for 2022-09 (the first is "
                              "exchange_rates[0])",)


def test_an_id_that_is_not_text_is_one_problem_not_a_crash(tmp_path):
    result = check_config(write_config(tmp_path, {"  - id: paleohack\n": "  - id: [paleohack]\n"}))
    assert result.exit_code == 2 and "communities[0].id: Input should be a valid string" in said(result)


def test_check_config_names_local_files_that_are_not_there(tmp_path):
    path = write_config(tmp_path, text=MINIMAL + "metrics: usage/{month}.csv\n")
    load_config(path)  # loading alone does not look at the disk
    result = check_config(path)
    assert result.exit_code == 2
    assert said(result).splitlines()[1:] == [
        f"  {path}:7: sources[0].path: {tmp_path / 'data' / 'gcp'} does not exist",
        f"  {path}:16: metrics: folder {tmp_path / 'usage'} does not exist"]
    (tmp_path / "data" / "gcp").mkdir(parents=True)
    (tmp_path / "usage").mkdir()
    assert check_config(path).exit_code == 0


# --- numbers: finite, exact and within bounds ------------------------------------------------------

def contract(terms: str) -> dict[str, str]:
    """A change that gives PaleoHack a contract; the first line of ``terms`` is line 12."""
    return {"    name: PaleoHack\n": "    name: PaleoHack\n    contract:\n" + terms}


@pytest.mark.parametrize("written, read", [
    ("1e30", "1E+30"),  # YAML 1.1 reads this as text (no dot), which pydantic makes a Decimal
    ("1.0e+30", "1.0E+30"),  # a YAML float, which the loader makes a Decimal
    ("1e400", "1E+400"),
    ("-5", "-5"),
    (".inf", "Infinity"), ("-.inf", "-Infinity"), (".nan", "NaN"),
    ("Infinity", "Infinity"), ("NaN", "NaN"), ("sNaN", "sNaN"),
])
def test_a_fee_amount_that_is_not_finite_negative_or_absurd_is_named_with_its_place(tmp_path, written, read):
    path = write_config(tmp_path, contract(f"      fees: [{{description: Fee, amount: {written}}}]\n"))
    assert problems(path) == (f"{path}:12: communities[0].contract.fees[0].amount: must be a number "
                              f"from 0 to 10,000,000,000,000, not {read}",)


def test_check_config_refuses_an_infinite_amount_in_one_line_and_exits_2(tmp_path):
    path = write_config(tmp_path, contract("      minimum: .inf\n"))
    result = check_config(path)
    assert result.exit_code == 2
    assert said(result).splitlines() == [
        f"Error: {path}: 1 problem",
        f"  {path}:12: communities[0].contract.minimum: must be a number from 0 to 10,000,000,000,000, not Infinity"]


MONEY = "must be a number from 0 to 10,000,000,000,000"
PERCENT = "must be a number from 0 to 100"


@pytest.mark.parametrize("terms, problem", [
    ("      cloud: {markup_percent: 101}\n", f"cloud.markup_percent: {PERCENT}, not 101"),
    ("      cloud: {markup_percent: -3}\n", f"cloud.markup_percent: {PERCENT}, not -3"),
    ("      cloud: {limit: -1}\n", f"cloud.limit: {MONEY}, not -1"),
    ("      tax: {rate_percent: -20}\n", f"tax.rate_percent: {PERCENT}, not -20"),
    ("      minimum: -600\n", f"minimum: {MONEY}, not -600"),
    ("      discounts: [{description: D, percent: 100.5}]\n", f"discounts[0].percent: {PERCENT}, not 100.5"),
    ("      fees: [{id: s, description: S, amount: 1}, {description: P, percent: 150, of: [s]}]\n",
     f"fees[1].percent: {PERCENT}, not 150"),
    ("      fees: [{description: U, metric: u, tiers: [{up_to: 0, unit_price: 1}, {unit_price: 1}]}]\n",
     "fees[0].tiers[0].up_to: must be a number more than 0 and at most 1,000,000,000,000,000,000, not 0"),
    ("      fees: [{description: U, metric: u, tiers: [{up_to: 1e19, unit_price: 1}, {unit_price: 1}]}]\n",
     "fees[0].tiers[0].up_to: must be a number more than 0 and at most 1,000,000,000,000,000,000, not 1E+19"),
    ("      fees: [{description: U, metric: u, tiers: [{unit_price: -0.5}]}]\n",
     f"fees[0].tiers[0].unit_price: {MONEY}, not -0.5"),
    ("      fees: [{description: U, metric: u, tiers: [{unit_price: 1}], cap: -5}]\n", f"fees[0].cap: {MONEY}, not -5"),
    ("      payment_terms_days: yes\n", "payment_terms_days: YAML reads yes as true, not a number"),
    ("      fees: [{description: Fee, amount: no}]\n", "fees[0].amount: YAML reads no as false, not a number"),
    ("      fees: [{description: Fee, amount: '500,00'}]\n", "fees[0].amount: '500,00' is not a number: write it "
                                                            "with a decimal point and no thousands separator or "
                                                            "currency, e.g. 1234.50"),
    ("      cloud: {cap_at_limit: treu}\n", "cloud.cap_at_limit: 'treu' is neither true nor false"),
])
def test_each_kind_of_number_has_its_sign_and_bounds(tmp_path, terms, problem):
    path = write_config(tmp_path, contract(terms))
    assert problems(path) == (f"{path}:12: communities[0].contract.{problem}",)


FINER = "is finer than USD's smallest unit (2 decimal places): an invoice would round it to"


@pytest.mark.parametrize("terms, problem", [
    ("      fees: [{description: Fee, amount: 500.005}]\n", f"fees[0].amount: 500.005 {FINER} 500.01"),
    ("      fees: [{description: U, metric: u, tiers: [{unit_price: 0.0005}], cap: 99.999}]\n",
     f"fees[0].cap: 99.999 {FINER} 100.00"),  # the unit price may be finer
    ("      discounts: [{description: D, amount: 10.001}]\n", f"discounts[0].amount: 10.001 {FINER} 10.00"),
    ("      minimum: 0.125\n", f"minimum: 0.125 {FINER} 0.13"),
    ("      cloud: {limit: 2500.0001}\n", f"cloud.limit: 2500.0001 {FINER} 2500.00"),
    ("      prepaid: {amount: 1000.5, start: 2022-09}\n      currency: JPY\n",
     "prepaid.amount: 1000.5 is finer than JPY's smallest unit (0 decimal places): an invoice would round it to "
     "1001"),
])
def test_an_amount_finer_than_the_contracts_currency_is_refused(tmp_path, terms, problem):
    path = write_config(tmp_path, contract(terms))
    assert problems(path) == (f"{path}:12: communities[0].contract.{problem}; write the amount the contract bills",)


def test_amounts_to_the_cent_and_finer_unit_prices_pass(tmp_path):
    terms = ("      fees: [{description: Fee, amount: 500.50}, {description: U, metric: u, "
             "tiers: [{unit_price: 0.0005}]}]\n      minimum: 600\n")
    assert load_config(write_config(tmp_path, contract(terms))).communities[0].contract.minimum == 600


@pytest.mark.parametrize("rate, read", [("0", "0"), ("-1.3", "-1.3"), ("1000001", "1000001"), ("0.0000009", "9E-7")])
def test_an_exchange_rate_is_between_a_millionth_and_a_million(tmp_path, rate, read):
    text = MINIMAL + f"exchange_rates:\n  - {{month: 2022-09, from: USD, to: CAD, rate: {rate}}}\n"
    path = write_config(tmp_path, text=text)
    assert problems(path) == (f"{path}:17: exchange_rates[0].rate: must be a number from 0.000001 to 1,000,000, "
                              f"not {read}",)


def test_the_bounds_themselves_are_allowed(tmp_path):
    terms = ("      cloud: {markup_percent: 100, limit: 0}\n"
             "      fees:\n"
             "        - {description: Fee, amount: 10000000000000}\n"
             "        - {description: U, metric: u, tiers: [{up_to: 1000000000000000000, unit_price: 0}, {unit_price: 0}]}\n")
    rates = ("exchange_rates:\n  - {month: 2022-09, from: USD, to: VND, rate: 1000000}\n"
             "  - {month: 2022-09, from: VND, to: USD, rate: 0.000001}\n")
    path = write_config(tmp_path, contract(terms), text=MINIMAL + rates)
    config = load_config(path)
    terms = config.community("paleohack").contract
    assert (terms.cloud.markup_percent, terms.fees[0].amount) == (100, Decimal(10) ** 13)
    assert terms.fees[1].tiers[0].up_to == Decimal(10) ** 18
    assert [r.rate for r in config.exchange_rates] == [Decimal(10) ** 6, Decimal("0.000001")]


@pytest.mark.parametrize("value", ["1e400", "sNaN", "Infinity", "-1"])
def test_a_metrics_value_that_is_not_finite_or_beyond_the_bound_is_refused(tmp_path, value):
    (tmp_path / "2022-09.csv").write_text(f"community,metric,value\npaleohack,users,3\nlis,users,{value}\n")
    with pytest.raises(DataError) as info:
        Metrics(tmp_path / "{month}.csv", Month(2022, 9)).value("paleohack", "users")
    assert info.value.message == (f"{tmp_path / '2022-09.csv'}:3: value '{value}' must be a number "
                                  "from 0 to 1,000,000,000,000,000,000")


def test_a_metrics_value_at_the_bound_is_read(tmp_path):
    (tmp_path / "2022-09.csv").write_text("community,metric,value\nlis,bytes,1000000000000000000\n")
    assert Metrics(tmp_path / "{month}.csv", Month(2022, 9)).value("lis", "bytes") == Decimal(10) ** 18


# --- aliases and nesting --------------------------------------------------------------------------

def billion_laughs(depth: int) -> str:
    """Each level repeats the one before nine times: 9**depth values from a few hundred bytes."""
    levels = ["laugh0: &l0 [ha, ha, ha, ha, ha, ha, ha, ha, ha]\n"]
    levels += [f"laugh{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, depth + 1)]
    return "".join(levels) + MINIMAL


@pytest.mark.parametrize("depth", [7, 9])
def test_aliases_that_expand_beyond_the_bound_are_refused_at_once(tmp_path, depth):
    path = write_config(tmp_path, text=billion_laughs(depth))
    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert time.perf_counter() - started < 0.5
    assert info.value.message == (f"{path}:2: the aliases from *l0 here on expand the file to more than 100,000 "
                                  "values; a billing config needs far fewer (are aliases nested in aliases?)")
    result = check_config(path)
    assert result.exit_code == 2 and said(result) == f"Error: {info.value.message}\n"


def test_an_alias_inside_the_value_it_names_is_refused(tmp_path):
    path = write_config(tmp_path, {"  payment_instructions:": "  address: &a [Main Street, *a]\n  payment_instructions:"})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.message == f"{path}:3: alias *a is inside the value it names (&a), so it would repeat forever"


def test_nesting_deeper_than_the_bound_is_refused(tmp_path):
    path = write_config(tmp_path, text=MINIMAL + "output: " + "[" * 150 + "]" * 150 + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.message == f"{path}:16: nested more than 100 levels deep"


def test_aliases_that_repeat_contract_terms_still_work(tmp_path):
    path = write_config(tmp_path, {
        "    name: PaleoHack\n": "    name: PaleoHack\n    contract: &standard\n"
                               "      fees: [{description: Service fee, amount: 500.00}]\n      payment_terms_days: 45\n",
        "    name: London Interdisciplinary School\n": "    name: London Interdisciplinary School\n"
                                                     "    contract: {<<: *standard, payment_terms_days: 60}\n"})
    config = load_config(path)
    paleohack, lis = config.community("paleohack").contract, config.community("lis").contract
    assert paleohack.fees == lis.fees and paleohack.fees[0].amount == Decimal("500.00")
    assert (paleohack.payment_terms_days, lis.payment_terms_days) == (45, 60)


# --- match values: null and words YAML reads as booleans -----------------------------------------

RULE = "    match: {gcp_project: hubs-shared-gke, gcp_label: {k8s-namespace: paleohack}}\n"


def test_gcp_project_null_matches_rows_without_a_project(tmp_path):
    text = MINIMAL + "  - absorbed: provider rounding\n    match: {gcp_project: [null, hubs-shared-gke]}\n"
    config = load_config(write_config(tmp_path, {RULE: "    match: {gcp_project: null}\n"}, text=text))
    assert [r.match.gcp_project for r in config.attribution] == [[None], [None, "hubs-shared-gke"]]


@pytest.mark.parametrize("accounts", ["null", '[null, "222222222222"]'])
def test_aws_account_null_is_refused_because_every_aws_row_has_an_account(tmp_path, accounts):
    path = write_config(tmp_path, {RULE: f"    match: {{aws_account: {accounts}}}\n"})
    assert problems(path) == (
        f"{path}:15: attribution[0].match.aws_account: null matches nothing: every AWS cost row has an account "
        "(the payer's when Cost Explorer names no linked account); give the account id",)


@pytest.mark.parametrize("match, place, written, read", [
    ("{gcp_project: shared, gcp_label: {team: no}}", "gcp_label.team", "no", "false"),
    ("{gcp_project: shared, gcp_label: {team: [a, ON]}}", "gcp_label.team[1]", "ON", "true"),
    ("{aws_account: \"222222222222\", aws_tag: {billable: yes}}", "aws_tag.billable", "yes", "true"),
    ("{gcp_project: off}", "gcp_project", "off", "false"),
    ("{gcp_project: shared, gcp_label: {day: 2022-09-01}}", "gcp_label.day", "2022-09-01", "a date"),
])
def test_a_match_value_yaml_reads_as_a_boolean_says_to_quote_it(tmp_path, match, place, written, read):
    path = write_config(tmp_path, {RULE: f"    match: {match}\n"})
    assert problems(path) == (f"{path}:15: attribution[0].match.{place}: YAML reads {written} as {read}; "
                              f"quote the value ('{written}') to match the text",)


def test_a_label_key_yaml_reads_as_a_boolean_is_named_by_its_text(tmp_path):
    path = write_config(tmp_path, {RULE: "    match: {gcp_project: shared, gcp_label: {on: x}}\n"})
    assert problems(path) == (f"{path}:15: attribution[0].match.gcp_label.on: YAML reads the key on as true; "
                              "quote it ('on') to keep the text",)


def test_real_yes_or_no_settings_still_read_yes_and_no(tmp_path):
    source = AWS_SOURCE.replace('"12345"', '"123456789012"') + "    accept_estimated: yes\n"
    path = write_config(tmp_path, {"    path: data/gcp\n": source, **contract("      cloud: {limit: 100, cap_at_limit: on}\n")})
    config = load_config(path)
    assert config.sources[1].accept_estimated is True
    assert config.community("paleohack").contract.cloud.cap_at_limit is True
