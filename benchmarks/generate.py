"""A month of GCP detailed billing export at the size real billing accounts reach, and its config.

Writes N rows (default 10 million) of the detailed export (``gcp_billing_export_resource_v1``),
every column a detailed export row has, in the shape ``bq extract`` writes it, as Parquet shards
and as gzip'd NDJSON shards, plus a ``billing.yaml`` (Parquet) and ``billing-ndjson.yaml`` (the
same config over the NDJSON copy) that ``billing run --month 2022-09`` bills as they are.

The world: K communities (default 200), each a ``k8s-namespace`` on one of 3 shared GKE projects
(``shared-0`` .. ``shared-2``); the first 50 (or K, if fewer) also have a dedicated project of
their own (``hub-007-cluster``). Shared projects also carry the cluster's own cost: the system
namespaces (``kube:system-overhead``, ``kube:unallocated``, ``kube-system``) and rows with no
namespace at all, which a shared pool per project splits among its communities in proportion to
their cost. Community sizes are skewed (a few large, many small), as they are in practice.
Credits (sustained use, committed use, promotions) are on about 40% of the rows, about 5% of the
rows belong to the invoices of the months before and after, and there is a tax row per project,
a rounding row and two adjustments.

Every value is a function of the row number and the seed (DuckDB's ``hash``), so the same
arguments give the same rows; DuckDB writes the files (``COPY ... TO``) straight from ``range``,
without Python loops or a table in memory.

    python benchmarks/generate.py /tmp/billing-bench [--rows 10000000] [--communities 200]
        [--shards 8] [--seed 42] [--formats parquet,ndjson]
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb

ACCOUNT = "01A2B3-C4D5E6-F7A8B9"
MONTH = "2022-09"
SHARED_PROJECTS = 3
MAX_DEDICATED = 50
SYSTEM_NAMESPACES = ("kube:system-overhead", "kube:unallocated", "kube-system")
# Bump when the rows change, so that runners regenerate data made by an older generator.
VERSION = 1

# service id, service, sku id, sku, usage unit, pricing unit, usage units per pricing unit, USD per pricing unit
SKUS = [
    ("6F81-5844-456A", "Compute Engine", "0B84-F1F5-4F4C", "N2 Instance Core running in Americas",
     "seconds", "hour", 3600, "0.031611"),
    ("6F81-5844-456A", "Compute Engine", "7B2F-9D1C-3E5A", "N2 Instance Ram running in Americas",
     "byte-seconds", "gibibyte hour", 3600 * 2**30, "0.004237"),
    ("6F81-5844-456A", "Compute Engine", "D973-5D65-BAB2", "Storage PD Capacity",
     "byte-seconds", "gibibyte month", 2629743 * 2**30, "0.04"),
    ("6F81-5844-456A", "Compute Engine", "A1B2-C3D4-E5F6", "N2 Preemptible Instance Core running in Americas",
     "seconds", "hour", 3600, "0.00765"),
    ("CCD8-9BF1-090E", "Kubernetes Engine", "B561-BFBD-1264", "Regional Kubernetes Clusters",
     "seconds", "hour", 3600, "0.1"),
    ("95FF-2EF5-5EA1", "Cloud Storage", "E5F0-6A5D-7BAD", "Standard Storage US Multi-region",
     "byte-seconds", "gibibyte month", 2629743 * 2**30, "0.026"),
    ("95FF-2EF5-5EA1", "Cloud Storage", "F1E2-D3C4-B5A6", "Class A Operations",
     "requests", "count", 1, "0.000005"),
    ("E505-1604-58F8", "Networking", "9DE9-9092-B3BC", "Network Internet Egress from Americas to Americas",
     "bytes", "gibibyte", 2**30, "0.12"),
    ("E505-1604-58F8", "Networking", "7C8D-9E0F-1A2B", "Network Inter Zone Egress",
     "bytes", "gibibyte", 2**30, "0.01"),
    ("D97E-AB26-5D95", "Cloud Filestore", "C3C1-A9D4-5E6F", "Filestore Capacity Basic HDD (Standard)",
     "byte-seconds", "gibibyte hour", 3600 * 2**30, "0.000274"),
    ("5490-F7B7-8DF6", "Cloud Logging", "143F-A1B0-E0BE", "Log Storage cost",
     "bytes", "gibibyte", 2**30, "0.5"),
    ("58CD-E7C3-72CA", "Cloud Monitoring", "0E9C-3F8E-9A1D", "Metric Volume",
     "bytes", "mebibyte", 2**20, "0.258"),
]
GKE_SKUS = 5  # the first five are what a GKE namespace or node pool costs
MACHINES = ["n2-highmem-4", "n2-standard-8", "e2-standard-4", "n2-highmem-16"]
APPS = ["jupyterhub", "dask-gateway", "binderhub", "grafana"]
COMPONENTS = ["singleuser-server", "hub", "proxy", "scheduler", "worker"]


def sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _list(values: list[str]) -> str:
    return "[" + ", ".join(sql_text(v) for v in values) + "]"


def _sku_list() -> str:
    return "[" + ", ".join(
        f"{{'service_id': {sql_text(a)}, 'service': {sql_text(b)}, 'sku_id': {sql_text(c)}, 'sku': {sql_text(d)}, "
        f"'unit': {sql_text(e)}, 'pricing_unit': {sql_text(f)}, 'factor': {g}::DOUBLE, 'price': {h}::DECIMAL(38, 9)}}"
        for a, b, c, d, e, f, g, h in SKUS) + "]"


def community_id(index: int) -> str:
    return f"hub-{index:03d}"


def dedicated_count(communities: int) -> int:
    return min(MAX_DEDICATED, communities)


def special_rows(communities: int) -> int:
    """Rows 0 .. this - 1 are the invoice's own rows: a tax row per project, one rounding row,
    two adjustments."""
    return SHARED_PROJECTS + dedicated_count(communities) + 3


def _struct_json(fields: list[tuple[str, str]]) -> str:
    """SQL: the JSON text of an object whose values are SQL expressions of JSON text (one
    ``concat``, not a chain of ``||`` that copies the growing text at every step)."""
    parts = []
    for index, (key, value) in enumerate(fields):
        parts += [sql_text(("{" if index == 0 else ",") + json.dumps(key) + ":"), value]
    return "concat(" + ", ".join(parts) + ", '}')"


def _json_string(expr: str) -> str:
    """SQL: a JSON string (or null) of a text expression without quotes or backslashes."""
    return f"coalesce('\"' || ({expr}) || '\"', 'null')"


def _json_list(expr: str, item: str, var: str = "x") -> str:
    """SQL: the JSON text of a list, each item's text given by ``item`` over ``var``."""
    return f"('[' || array_to_string(list_transform({expr}, lambda {var}: {item}), ',') || ']')"


KEY_VALUE_JSON = _struct_json([("key", _json_string("x.key")), ("value", _json_string("x.value"))])
EMPTY_LABELS = "[]::STRUCT(key VARCHAR, value VARCHAR)[]"


def dimensions(connection: duckdb.DuckDBPyConnection, communities: int) -> None:
    """Small tables of what rows have in common (projects, SKUs, label sets, resources, hours),
    each value with its JSON text, so that a row is a few joins and numbers: fast to write."""
    dedicated = dedicated_count(communities)
    projects = SHARED_PROJECTS + dedicated
    connection.execute(f"""
        CREATE OR REPLACE TEMP TABLE projects AS
        SELECT project_index, cluster, project, {_struct_json([
            ("id", _json_string("project.id")), ("number", _json_string("project.number")),
            ("name", _json_string("project.name")), ("labels", _json_list("project.labels", KEY_VALUE_JSON)),
            ("ancestry_numbers", _json_string("project.ancestry_numbers")),
            ("ancestors", _json_list("project.ancestors", _struct_json([
                ("resource_name", _json_string("x.resource_name")),
                ("display_name", _json_string("x.display_name"))])))])} AS project_json
        FROM (SELECT project_index, cluster, {{
                'id': project_id, 'number': number, 'name': project_id,
                'labels': CASE WHEN project_index < {SHARED_PROJECTS} THEN [{{'key': 'team', 'value': 'platform'}}]
                               ELSE [{{'key': 'community', 'value': cluster}}] END,
                'ancestry_numbers': '/100000000001/' || folder || '/',
                'ancestors': [{{'resource_name': 'projects/' || number, 'display_name': project_id}},
                              {{'resource_name': 'folders/' || folder, 'display_name': 'hubs'}},
                              {{'resource_name': 'organizations/100000000001', 'display_name': 'openhubs.example'}}]
              }} AS project
              FROM (SELECT project_index, cluster, cluster || CASE WHEN project_index < {SHARED_PROJECTS} THEN ''
                                                                   ELSE '-cluster' END AS project_id,
                           (412345678901 + project_index * 1000003)::VARCHAR AS number,
                           (200000000002 + project_index % 3)::VARCHAR AS folder
                    FROM (SELECT i::INTEGER AS project_index,
                                 CASE WHEN i < {SHARED_PROJECTS} THEN 'shared-' || i
                                      ELSE 'hub-' || lpad((i - {SHARED_PROJECTS})::VARCHAR, 3, '0') END AS cluster
                          FROM range({projects}) AS t(i))))
        UNION ALL SELECT -1, NULL, NULL, 'null'""")
    skus = ", ".join(
        f"({index}, {sql_text(a)}, {sql_text(b)}, {sql_text(c)}, {sql_text(d)}, {sql_text(e)}, {sql_text(f)}, "
        f"{g}::DOUBLE, {h}::DECIMAL(38, 9))"
        for index, (a, b, c, d, e, f, g, h) in enumerate(SKUS))
    connection.execute(f"""
        CREATE OR REPLACE TEMP TABLE skus AS
        SELECT sku_index, {{'id': service_id, 'description': service_name}} AS service,
               {{'id': sku_id, 'description': sku_name}} AS sku, unit, pricing_unit, factor, price,
               service_name = 'Compute Engine' AND unit = 'seconds' AS machine,
               service_name = 'Cloud Storage' AS storage,
               {_struct_json([("id", _json_string("service_id")), ("description", _json_string("service_name"))])}
                 AS service_json,
               {_struct_json([("id", _json_string("sku_id")), ("description", _json_string("sku_name"))])} AS sku_json,
               {_struct_json([("effective_price", "price::VARCHAR"), ("tier_start_amount", "'0'"),
                              ("unit", _json_string("pricing_unit")), ("pricing_unit_quantity", "'1'")])} AS price_json
        FROM (VALUES {skus}) AS t(sku_index, service_id, service_name, sku_id, sku_name, unit, pricing_unit, factor,
                                  price)""")
    # Label sets: per GKE row, its project, namespace (community, system, none; dedicated: three)
    # and one of 20 variants (node pool, app, component); per other row, its project and variant.
    namespaces = f"""
        SELECT p.project_index, n AS ns_code,
               CASE WHEN p.project_index >= {SHARED_PROJECTS} THEN {_list(['prod', 'staging', 'support'])}[1 + n]
                    WHEN n < {communities} THEN 'hub-' || lpad(n::VARCHAR, 3, '0')
                    WHEN n < {communities + 3} THEN {_list(list(SYSTEM_NAMESPACES))}[n - {communities} + 1]
                    END AS ns
        FROM (SELECT project_index FROM range({projects}) AS t(project_index)) AS p,
             (SELECT n FROM range({communities + 4}) AS t(n)) AS n
        WHERE (p.project_index < {SHARED_PROJECTS} AND (n >= {communities} OR n % {SHARED_PROJECTS} = p.project_index))
           OR (p.project_index >= {SHARED_PROJECTS} AND n < 3)"""
    connection.execute(f"""
        CREATE OR REPLACE TEMP TABLE label_sets AS
        SELECT gke, project_index, ns_code, variant, labels, {_json_list("labels", KEY_VALUE_JSON)} AS labels_json
        FROM (
          SELECT true AS gke, n.project_index::INTEGER AS project_index, n.ns_code::INTEGER AS ns_code,
                 v.variant::INTEGER AS variant,
                 CASE WHEN ns IS NULL THEN [{{'key': 'goog-k8s-cluster-name', 'value': p.cluster}},
                                            {{'key': 'goog-k8s-node-pool-name', 'value': 'core-pool'}}]
                      ELSE [{{'key': 'goog-k8s-cluster-name', 'value': p.cluster}},
                            {{'key': 'k8s-namespace', 'value': ns}},
                            {{'key': 'goog-k8s-node-pool-name', 'value': 'user-pool-' || (v.variant % 4)}},
                            {{'key': 'k8s-label/app.kubernetes.io/name',
                              'value': {_list(APPS)}[1 + v.variant % {len(APPS)}]}},
                            {{'key': 'k8s-label/component',
                              'value': {_list(COMPONENTS)}[1 + v.variant % {len(COMPONENTS)}]}}] END AS labels
          FROM ({namespaces}) AS n JOIN projects AS p USING (project_index), range(20) AS v(variant)
          UNION ALL
          SELECT false, p.project_index, -1, v.variant::INTEGER,
                 CASE WHEN v.variant % 4 = 0 AND p.project_index >= 0
                      THEN [{{'key': 'purpose', 'value': 'home-directories'}}] ELSE {EMPTY_LABELS} END
          FROM projects AS p, range(20) AS v(variant))""")
    connection.execute(f"""
        CREATE OR REPLACE TEMP TABLE resources AS
        SELECT project_index, node, resource, tags,
               {_struct_json([("name", _json_string("resource.name")),
                              ("global_name", _json_string("resource.global_name"))])} AS resource_json,
               {_json_list("tags", _struct_json([
                   ("key", _json_string("x.key")), ("value", _json_string("x.value")),
                   ("inherited", "x.inherited::VARCHAR"), ("namespace", _json_string("x.namespace"))]))} AS tags_json
        FROM (
          SELECT p.project_index, n.node::INTEGER AS node,
                 {{'name': name, 'global_name': '//compute.googleapis.com/projects/' || p.project.id
                   || '/zones/us-central1-b/instances/' || name}} AS resource,
                 [{{'key': 'tagKeys/281484287497', 'value': 'tagValues/28147' || (n.node % 10),
                   'inherited': true, 'namespace': 'openhubs.example'}}] AS tags
          FROM projects AS p, range(600) AS n(node),
               LATERAL (SELECT 'gke-' || p.cluster || '-user-pool-' || lpad(n.node::VARCHAR, 4, '0') AS name)
          WHERE p.project_index >= 0
          UNION ALL
          SELECT -1, -1, {{'name': NULL::VARCHAR, 'global_name': NULL::VARCHAR}},
                 []::STRUCT(key VARCHAR, value VARCHAR, inherited BOOLEAN, namespace VARCHAR)[])""")
    connection.execute(f"""
        CREATE OR REPLACE TEMP TABLE machines AS
        SELECT machine::INTEGER AS machine, system_labels, {_json_list("system_labels", KEY_VALUE_JSON)} AS system_labels_json
        FROM (SELECT m AS machine,
                     [{{'key': 'compute.googleapis.com/machine_spec', 'value': {_list(MACHINES)}[1 + m]}},
                      {{'key': 'compute.googleapis.com/cores', 'value': (4 * (1 + m))::VARCHAR}},
                      {{'key': 'compute.googleapis.com/memory', 'value': (32768 * (1 + m))::VARCHAR}}] AS system_labels
              FROM range({len(MACHINES)}) AS t(m)
              UNION ALL SELECT -1, {EMPTY_LABELS})""")
    connection.execute(f"""
        CREATE OR REPLACE TEMP TABLE locations AS
        SELECT code::INTEGER AS code, location,
               {_struct_json([(k, _json_string(f"location.{k}")) for k in ("location", "country", "region", "zone")])}
                 AS location_json
        FROM (SELECT -1 AS code, {{'location': NULL::VARCHAR, 'country': NULL::VARCHAR, 'region': NULL::VARCHAR,
                                   'zone': NULL::VARCHAR}} AS location
              UNION ALL SELECT 0, {{'location': 'US', 'country': 'US', 'region': NULL, 'zone': NULL}}
              UNION ALL SELECT z + 1, {{'location': 'us-central1', 'country': 'US', 'region': 'us-central1',
                                        'zone': 'us-central1-' || ['a', 'b', 'c'][1 + z]}}
              FROM range(3) AS t(z))""")


MONTH_STARTS = {"202208": "2022-08-01", "202209": "2022-09-01", "202210": "2022-10-01"}


def rows_sql(start: int, stop: int, communities: int, seed: int, ndjson: bool) -> str:
    """DuckDB SQL of export rows ``start`` .. ``stop - 1`` (needs the ``dimensions`` tables):
    every column of a detailed export row for Parquet, or for NDJSON each row's JSON text as
    ``bq extract`` writes it (``line``), of the same values."""
    k, dedicated = communities, dedicated_count(communities)
    projects = SHARED_PROJECTS + dedicated
    special = special_rows(communities)

    def h(salt: int, modulo: int) -> str:
        return f"(hash(i, {seed}, {salt}) % {modulo})::BIGINT"

    epochs = " ".join(f"WHEN '{m}' THEN epoch(TIMESTAMP '{d}')::BIGINT" for m, d in MONTH_STARTS.items())
    # Per row: what kind it is, where it lands and its amounts, all from hashes of its number.
    base = f"""
    SELECT i,
      CASE WHEN i < {projects} THEN 'tax' WHEN i = {projects} THEN 'rounding_error'
           WHEN i < {special} THEN 'adjustment' ELSE 'regular' END AS cost_type,
      {h(1, 10000)} AS kind_u,
      floor({k} * pow({h(2, 1000003)} / 1000003.0, 2))::BIGINT AS community,
      {h(3, 100)} AS namespace_u,
      {h(4, 1000)} AS month_u,
      {h(5, 100)} AS credit_u,
      {h(6, 1000000)} AS sku_u,
      {h(7, 2500000)} AS cost_micros,
      {h(8, 30 * 24)} AS hour_of_month,
      {h(9, 1000000)} AS microsecond,
      {h(10, 1000000)} AS detail_u
    FROM range({start}, {stop}) AS t(i)"""
    placed = f"""
    SELECT *,
      CASE WHEN cost_type = 'rounding_error' THEN -1
           WHEN cost_type = 'tax' THEN i
           WHEN cost_type = 'adjustment' THEN i % {SHARED_PROJECTS}
           WHEN kind_u < 6000 THEN community % {SHARED_PROJECTS}
           WHEN kind_u < 9300 THEN {SHARED_PROJECTS} + community % {dedicated}
           ELSE kind_u % {projects} END::INTEGER AS project_index,
      cost_type = 'regular' AND kind_u < 9300 AS gke,
      CASE WHEN cost_type <> 'regular' THEN '202209'
           WHEN month_u < 25 THEN '202208' WHEN month_u < 50 THEN '202210' ELSE '202209' END AS invoice_month
    FROM ({base})"""
    keyed = f"""
    SELECT *,
      CASE WHEN NOT gke THEN -1
           WHEN project_index >= {SHARED_PROJECTS} THEN namespace_u % 3
           WHEN namespace_u < 85 THEN community
           WHEN namespace_u < 97 THEN {k} + namespace_u % 3
           ELSE {k} + 3 END::INTEGER AS ns_code,
      (detail_u % 20)::INTEGER AS variant,
      CASE WHEN gke THEN (detail_u % 600)::INTEGER ELSE -1 END AS node,
      (CASE WHEN cost_type <> 'regular' THEN 4
            WHEN gke THEN sku_u % {GKE_SKUS}
            ELSE {GKE_SKUS} + sku_u % {len(SKUS) - GKE_SKUS} END)::INTEGER AS sku_index,
      CASE WHEN cost_type = 'regular' AND cost_micros % 100 < 3 THEN 0
           WHEN cost_type = 'tax' THEN 25.0 + cost_micros / 10000.0
           WHEN cost_type = 'rounding_error' THEN (cost_micros % 5000 - 2500) / 1000000.0
           WHEN cost_type = 'adjustment' THEN -(cost_micros / 100000.0)
           ELSE cost_micros / 1000000.0 END AS cost,
      (CASE invoice_month {epochs} END
        + 3600 * CASE WHEN cost_type = 'regular' THEN hour_of_month ELSE 28 * 24 END) AS start_epoch
    FROM ({placed})"""
    joined = f"""
    SELECT r.*, p.project, p.project_json, s.service, s.sku, s.service_json, s.sku_json, s.unit, s.pricing_unit,
           s.price, s.price_json, round(r.cost / s.price::DOUBLE, 6) AS in_pricing_units, s.factor,
           l.labels, l.labels_json, m.system_labels, m.system_labels_json, o.resource, o.resource_json, o.tags,
           o.tags_json, g.location, g.location_json
    FROM ({keyed}) AS r
    JOIN projects AS p ON p.project_index = r.project_index
    JOIN skus AS s ON s.sku_index = r.sku_index
    JOIN label_sets AS l ON l.gke = r.gke AND l.project_index = r.project_index AND l.ns_code = r.ns_code
                        AND l.variant = r.variant
    JOIN machines AS m ON m.machine = CASE WHEN s.machine THEN r.detail_u % {len(MACHINES)} ELSE -1 END
    JOIN resources AS o ON o.project_index = CASE WHEN r.gke THEN r.project_index ELSE -1 END AND o.node = r.node
    JOIN locations AS g ON g.code = CASE WHEN r.project_index < 0 THEN -1 WHEN s.storage THEN 0
                                         ELSE 1 + r.detail_u % 3 END"""
    credit = ("{{'name': '{name}', 'amount': -round(cost * {share}, 6), 'full_name': {full}, "
              "'id': '{id}', 'type': '{type}'}}")
    sud = credit.format(name="Sustained Usage Discount", share=0.2, full="NULL::VARCHAR",
                        id="SustainedUsageDiscount", type="SUSTAINED_USAGE_DISCOUNT")
    cud = credit.format(name="Committed use discount: CPU", share=0.3, full="NULL::VARCHAR",
                        id="CommittedUsageDiscountCpu", type="COMMITTED_USAGE_DISCOUNT")
    promo = credit.format(name="Research credits", share=0.15, full="'Research credits'",
                          id="promotions/1234567890123456789", type="PROMOTION")
    valued = f"""
    SELECT *,
      CASE WHEN cost_type <> 'regular' OR cost = 0 OR credit_u >= 40 THEN []
           WHEN credit_u < 28 THEN [{sud}]
           WHEN credit_u < 36 THEN [{cud}]
           ELSE [{cud}, {promo}] END AS credits,
      round(in_pricing_units * factor, 0) AS usage_amount,
      (start_epoch * 1000000 + (4 + detail_u % 20) * 3600000000 + microsecond) AS export_micros
    FROM ({joined})"""
    adjustment = ("CASE WHEN cost_type = 'adjustment' THEN {'id': 'adj-' || i, 'description': 'Billing adjustment', "
                  "'mode': 'MANUAL_ADJUSTMENTS', 'type': 'GENERAL_ADJUSTMENT'} "
                  "ELSE NULL::STRUCT(id VARCHAR, description VARCHAR, mode VARCHAR, type VARCHAR) END")
    if not ndjson:
        return f"""
    SELECT
      '{ACCOUNT}' AS billing_account_id, service, sku,
      to_timestamp(start_epoch) AS usage_start_time, to_timestamp(start_epoch + 3600) AS usage_end_time,
      project, labels, system_labels, location, resource, tags,
      to_timestamp(export_micros / 1000000) AS export_time,
      cost, 'USD' AS currency, 1.0::DOUBLE AS currency_conversion_rate,
      {{'amount': usage_amount, 'unit': unit, 'amount_in_pricing_units': in_pricing_units,
        'pricing_unit': pricing_unit}} AS usage,
      credits,
      {{'month': invoice_month, 'publisher_type': 'GOOGLE'}} AS invoice,
      cost_type,
      {adjustment} AS adjustment_info,
      {{'effective_price': price, 'tier_start_amount': 0::DECIMAL(38, 9), 'unit': pricing_unit,
        'pricing_unit_quantity': 1::DECIMAL(38, 9)}} AS price,
      cost AS cost_at_list, 'GOOGLE' AS transaction_type, NULL::VARCHAR AS seller_name,
      {{'instance_id': NULL::VARCHAR}} AS subscription,
      {{'id': 'D2C4-DC2D-6B8C', 'description': 'Default'}} AS consumption_model,
      cost AS cost_at_effective_price, cost AS cost_at_list_consumption_model
    FROM ({valued})"""
    number = "({})::VARCHAR"
    credits_json = _json_list("credits", _struct_json([
        ("name", _json_string("x.name")), ("amount", "x.amount::VARCHAR"), ("full_name", _json_string("x.full_name")),
        ("id", _json_string("x.id")), ("type", _json_string("x.type"))]))
    stamp = "strftime(to_timestamp({}), '%Y-%m-%d %H:%M:%S UTC')"
    line = _struct_json([
        ("billing_account_id", f"'\"{ACCOUNT}\"'"), ("service", "service_json"), ("sku", "sku_json"),
        ("usage_start_time", _json_string(stamp.format("start_epoch"))),
        ("usage_end_time", _json_string(stamp.format("start_epoch + 3600"))),
        ("project", "project_json"), ("labels", "labels_json"), ("system_labels", "system_labels_json"),
        ("location", "location_json"), ("resource", "resource_json"), ("tags", "tags_json"),
        ("export_time", _json_string("strftime(to_timestamp(export_micros / 1000000), '%Y-%m-%d %H:%M:%S.%f UTC')")),
        ("cost", number.format("cost")), ("currency", "'\"USD\"'"), ("currency_conversion_rate", "'1.0'"),
        ("usage", _struct_json([("amount", number.format("usage_amount")), ("unit", _json_string("unit")),
                                ("amount_in_pricing_units", number.format("in_pricing_units")),
                                ("pricing_unit", _json_string("pricing_unit"))])),
        ("credits", credits_json),
        ("invoice", _struct_json([("month", _json_string("invoice_month")), ("publisher_type", "'\"GOOGLE\"'")])),
        ("cost_type", _json_string("cost_type")),
        ("adjustment_info", f"CASE WHEN cost_type = 'adjustment' THEN "
                            f"'{{\"id\":\"adj-' || i || '\",\"description\":\"Billing adjustment\",\"mode\":"
                            f"\"MANUAL_ADJUSTMENTS\",\"type\":\"GENERAL_ADJUSTMENT\"}}' ELSE 'null' END"),
        ("price", "price_json"), ("cost_at_list", number.format("cost")), ("transaction_type", "'\"GOOGLE\"'"),
        ("seller_name", "'null'"), ("subscription", "'{\"instance_id\":null}'"),
        ("consumption_model", "'{\"id\":\"D2C4-DC2D-6B8C\",\"description\":\"Default\"}'"),
        ("cost_at_effective_price", number.format("cost")), ("cost_at_list_consumption_model", number.format("cost")),
    ])
    return f"SELECT {line} AS line FROM ({valued})"


def _gzip(plain: Path, target: Path) -> None:
    """``plain`` compressed into ``target`` (no name or time in the header: the same bytes every
    time), then removed. zlib releases the GIL, so this runs beside DuckDB writing the next shard."""
    with plain.open("rb") as source, target.open("wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0) as sink:
        shutil.copyfileobj(source, sink, 16 * 2**20)
    plain.unlink()


def write_rows(folder: Path, rows: int, communities: int, shards: int, seed: int, formats: tuple[str, ...]) -> None:
    """The shards of each format: ``parquet/export-000000000000.parquet``, ... and
    ``ndjson/export-000000000000.json.gz``, ..., as ``bq extract`` names a wildcard extract."""
    connection = duckdb.connect()
    dimensions(connection, communities)
    per = -(-rows // shards)
    with ThreadPoolExecutor(max_workers=1) as compressor:
        pending = []
        for kind in formats:
            target = folder / kind
            if target.exists():
                shutil.rmtree(target)
            target.mkdir(parents=True)
            for shard in range(shards):
                start, stop = shard * per, min(rows, (shard + 1) * per)
                if start >= stop:
                    break
                sql = rows_sql(start, stop, communities, seed, ndjson=kind == "ndjson")
                if kind == "parquet":
                    path = target / f"export-{shard:012d}.parquet"
                    connection.execute(f"COPY ({sql}) TO {sql_text(str(path))} "
                                       "(FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 122880)")
                    continue
                plain = target / f".export-{shard:012d}.json"
                connection.execute(f"COPY ({sql}) TO {sql_text(str(plain))} (FORMAT csv, HEADER false, QUOTE '', "
                                   f"ESCAPE '', DELIMITER {sql_text(chr(31))})")
                pending.append(compressor.submit(_gzip, plain, target / f"export-{shard:012d}.json.gz"))
                if len(pending) > 1:  # at most one shard waits for the compressor (each is GBs of text)
                    pending.pop(0).result()
        for job in pending:
            job.result()
    connection.close()


def config_text(communities: int, data: str) -> str:
    """A billing.yaml for the generated world: every community with a contract, the attribution
    rules (a rule per dedicated project, then one per namespace), a shared pool per shared
    project for its system namespaces and rows without a namespace."""
    dedicated = dedicated_count(communities)
    lines = [
        "# Generated by benchmarks/generate.py: a month of GCP detailed export for benchmarks.",
        "organisation:",
        "  name: Benchmark Hosting Cooperative",
        "  address: [1 Example Street, Example City]",
        "  email: billing@benchmark.example",
        "  payment_instructions: Bank transfer to Benchmark Hosting Cooperative, account 000123456789",
        "sources:",
        "  - id: gcp-export",
        "    type: gcp-export-files",
        f"    path: {data}",
        "communities:",
    ]
    for index in range(communities):
        cid = community_id(index)
        lines += [f"  - id: {cid}", f"    name: Community {index:03d}",
                  f"    contact: {{name: Community {index:03d} organisers, email: {cid}@communities.example}}",
                  "    contract:"]
        if index % 4 == 1:
            lines.append("      cloud: {markup_percent: 3}")
        fee = "750.00" if index < dedicated else "250.00"
        lines.append(f"      fees: [{{description: Managed JupyterHub service fee, amount: {fee}}}]")
        if index % 5 == 2:
            lines.append("      discounts: [{description: Education partner discount, percent: 10}]")
        if index % 7 == 3:
            lines.append("      tax: {description: Sales tax, rate_percent: 6, base: [fees]}")
    lines.append("shared_pools:")
    for project in range(SHARED_PROJECTS):
        members = [community_id(c) for c in range(communities) if c % SHARED_PROJECTS == project]
        if not members:
            continue
        lines += [f"  - id: shared-{project}-overhead",
                  f"    description: Cluster shared-{project} nodes and system overhead",
                  "    split: proportional",
                  f"    communities: [{', '.join(members)}]"]
    lines.append("attribution:")
    for index in range(dedicated):
        lines += [f"  - community: {community_id(index)}",
                  f"    match: {{gcp_project: {community_id(index)}-cluster}}"]
    for index in range(communities):
        lines += [f"  - community: {community_id(index)}",
                  f"    match: {{gcp_project: shared-{index % SHARED_PROJECTS}, "
                  f"gcp_label: {{k8s-namespace: {community_id(index)}}}}}"]
    for project in range(min(SHARED_PROJECTS, communities)):
        values = ", ".join(json.dumps(v) for v in SYSTEM_NAMESPACES)
        lines += [f"  - shared_pool: shared-{project}-overhead",
                  f"    match: {{gcp_project: shared-{project}, gcp_label: {{k8s-namespace: [{values}, null]}}}}"]
    lines += ["guards:", "  max_change_percent: null", "ledger:", "  url: sqlite:///ledger.sqlite", "output: output", ""]
    return "\n".join(lines)


def generate(folder: Path, rows: int = 10_000_000, communities: int = 200, shards: int = 8, seed: int = 42,
             formats: tuple[str, ...] = ("parquet", "ndjson")) -> dict:
    """Write the data and configs into ``folder``; returns what was made (also in ``generated.json``).
    Data already there from the same arguments is kept."""
    if communities < 1 or rows < special_rows(communities) or shards < 1:
        raise SystemExit(f"need at least 1 community, 1 shard and {special_rows(communities)} rows")
    wanted = {"version": VERSION, "rows": rows, "communities": communities, "shards": shards, "seed": seed,
              "month": MONTH}
    stamp = folder / "generated.json"
    done = json.loads(stamp.read_text()) if stamp.exists() else {}
    made = set(done.get("formats", ())) if {k: done.get(k) for k in wanted} == wanted else set()
    missing = tuple(kind for kind in formats if kind not in made)
    folder.mkdir(parents=True, exist_ok=True)
    if missing:
        stamp.unlink(missing_ok=True)
        write_rows(folder, rows, communities, shards, seed, missing)
        made |= set(missing)
    (folder / "billing.yaml").write_text(config_text(communities, "parquet"))
    (folder / "billing-ndjson.yaml").write_text(config_text(communities, "ndjson"))
    record = {**wanted, "formats": sorted(made)}
    stamp.write_text(json.dumps(record, indent=2) + "\n")
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--communities", type=int, default=200)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--formats", default="parquet,ndjson", help="comma-separated: parquet, ndjson")
    args = parser.parse_args()
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    if set(formats) - {"parquet", "ndjson"}:
        parser.error("--formats: parquet and/or ndjson")
    start = time.perf_counter()
    generate(args.folder, args.rows, args.communities, args.shards, args.seed, formats)
    sizes = {kind: sum(p.stat().st_size for p in (args.folder / kind).iterdir()) for kind in formats}
    print(f"{args.rows:,} rows, {args.communities} communities in {time.perf_counter() - start:.1f} s: "
          + ", ".join(f"{kind} {size / 2**20:,.0f} MiB" for kind, size in sizes.items()) + f" under {args.folder}")


if __name__ == "__main__":
    main()
