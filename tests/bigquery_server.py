"""A small BigQuery REST server on 127.0.0.1 for tests: real HTTP, received SQL run by DuckDB.

It answers the calls ``google-cloud-bigquery`` makes for a query job: jobs.insert (including
dry runs), jobs.get, jobs.getQueryResults with page tokens, jobs.query, tables.list; and the
OAuth token exchange of a service account key file whose ``token_uri`` points here.
The received SQL is parsed as BigQuery SQL with sqlglot; named query parameters are put in as
typed literals, tables are looked up by their full name, and the result goes back in BigQuery's
JSON wire format (a schema, then rows of ``{"f": [{"v": ...}]}``, NUMERIC as strings).

It knows nothing of the code under test: it is a stand-in for BigQuery, with switches that make
it answer as BigQuery does when things go wrong (``deny``, ``transient_failures``, ``slow``).
"""

from __future__ import annotations

import functools
import json
import re
import threading
import uuid
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import duckdb
import sqlglot
from sqlglot import exp

EXPORT_COLUMNS = {
    "billing_account_id": "VARCHAR",
    "service": "STRUCT(id VARCHAR, description VARCHAR)",
    "sku": "STRUCT(id VARCHAR, description VARCHAR)",
    "usage_start_time": "VARCHAR",
    "project": "STRUCT(id VARCHAR, name VARCHAR)",
    "labels": "STRUCT(key VARCHAR, value VARCHAR)[]",
    "cost": "DOUBLE",
    "currency": "VARCHAR",
    "credits": "STRUCT(name VARCHAR, amount DOUBLE, full_name VARCHAR, id VARCHAR, type VARCHAR)[]",
    "invoice": "STRUCT(month VARCHAR)",
    "cost_type": "VARCHAR",
}

TYPES = [("DECIMAL", "NUMERIC"), ("VARCHAR", "STRING"), ("BIGINT", "INT64"), ("INTEGER", "INT64"),
         ("HUGEINT", "INT64"), ("DOUBLE", "FLOAT64"), ("TIMESTAMP", "TIMESTAMP"), ("DATE", "DATE"),
         ("BOOLEAN", "BOOL")]


class BigQueryError(Exception):
    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def body(self) -> dict:
        status = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                  503: "UNAVAILABLE"}.get(self.code, "UNKNOWN")
        return {"error": {"code": self.code, "message": self.message, "status": status,
                          "errors": [{"message": self.message, "domain": "global", "reason": self.reason}]}}


class BigQueryServer:
    """Start with ``with BigQueryServer() as server:``; ``server.url`` is the API endpoint."""

    def __init__(self, page_size: int = 1000):
        self.db = duckdb.connect()
        self.lock = threading.Lock()
        self.tables: dict[str, str] = {}
        self.jobs: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict]] = []
        self.answers: list[tuple[str, str, int, int]] = []  # (method, path, bytes of the body, rows in it)
        self.page_size = page_size
        self.bytes_per_row = 512
        self.deny: set[str] = set()          # table names whose queries get 403 accessDenied
        self.transient_failures = 0          # this many jobs.insert calls answer 503 backendError
        self.slow = False                    # jobs never finish
        self.tokens_issued = 0
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def __enter__(self) -> BigQueryServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._http.shutdown()
        self._http.server_close()
        self.db.close()

    # --- data -----------------------------------------------------------------------------------

    def load_export(self, full_name: str, files: list[Path]) -> None:
        """Make ``project.dataset.table`` a table holding these NDJSON export files.

        The ingestion-time pseudo-column ``_PARTITIONTIME`` is the day of ``usage_start_time``.
        """
        local = "t_" + re.sub(r"\W", "_", full_name)
        names = "[" + ", ".join(f"'{f}'" for f in files) + "]"
        columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in EXPORT_COLUMNS.items()) + "}"
        with self.lock:
            self.db.execute(
                f"CREATE OR REPLACE TABLE {local} AS SELECT *, "
                f"date_trunc('day', CAST(left(usage_start_time, 19) AS TIMESTAMP)) AS _PARTITIONTIME "
                f"FROM read_json({names}, format = 'newline_delimited', columns = {columns})").fetchall()
        self.tables[full_name] = local

    def load_table(self, full_name: str, select: str) -> None:
        """Make ``project.dataset.table`` a table of whatever ``select`` (DuckDB SQL) returns."""
        local = "t_" + re.sub(r"\W", "_", full_name)
        with self.lock:
            self.db.execute(f"CREATE OR REPLACE TABLE {local} AS {select}").fetchall()
        self.tables[full_name] = local

    def row_count(self, full_name: str) -> int:
        with self.lock:
            return self.db.execute(f"SELECT count(*) FROM {self.tables[full_name]}").fetchall()[0][0]

    # --- queries --------------------------------------------------------------------------------

    def translate(self, sql: str, parameters: list[dict]) -> tuple[str, list[str]]:
        values = {p["name"]: p for p in parameters}
        used: list[str] = []

        def substitute(node: exp.Expression) -> exp.Expression:
            if isinstance(node, exp.Parameter):
                param = values.get(node.name)
                if param is None:
                    raise BigQueryError(400, "invalidQuery", f"Query parameter '{node.name}' not found")
                return _literal(param)
            if isinstance(node, exp.Table) and node.args.get("db"):
                name = ".".join(part.name for part in node.parts)
                if name not in self.tables:
                    project, dataset, table = name.split(".")
                    raise BigQueryError(404, "notFound",
                                        f"Not found: Table {project}:{dataset}.{table} was not found in location US")
                used.append(name)
                return exp.to_table(self.tables[name])
            return node

        try:
            tree = sqlglot.parse_one(sql, read="bigquery")
        except sqlglot.errors.ParseError as error:
            raise BigQueryError(400, "invalidQuery", f"Syntax error: {str(error).splitlines()[0]}") from None
        return tree.transform(substitute).sql(dialect="duckdb"), used

    def run(self, sql: str, parameters: list[dict]) -> dict:
        duck_sql, used = self.translate(sql, parameters)
        denied = [name for name in used if name in self.deny]
        if denied:
            raise BigQueryError(403, "accessDenied",
                                f"Access Denied: Table {denied[0]}: User does not have permission to query "
                                "table, or perhaps it does not exist.")
        with self.lock:
            try:
                relation = self.db.cursor().sql(duck_sql)
                names, types, rows = relation.columns, [str(t) for t in relation.types], relation.fetchall()
            except duckdb.Error as error:
                raise BigQueryError(400, "invalidQuery", str(error).splitlines()[0]) from None
        fields = [{"name": n, "type": _bq_type(t), "mode": "NULLABLE"} for n, t in zip(names, types)]
        scanned = sum(self.row_count(name) for name in used) * self.bytes_per_row
        return {"schema": {"fields": fields}, "rows": [_wire_row(r) for r in rows], "bytes": scanned}


def _literal(param: dict) -> exp.Expression:
    kind, value = param["parameterType"]["type"], param["parameterValue"]["value"]
    if kind == "STRING":
        return exp.Literal.string(value)
    if kind in ("INT64", "NUMERIC", "FLOAT64"):
        return exp.Literal.number(value)
    if kind in ("DATE", "TIMESTAMP"):
        return exp.cast(exp.Literal.string(value), kind)
    raise BigQueryError(400, "invalidQuery", f"Unsupported parameter type {kind}")


def _bq_type(duck_type: str) -> str:
    for prefix, bq in TYPES:
        if duck_type.upper().startswith(prefix):
            return bq
    return "STRING"


def _wire(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _wire_row(row: tuple) -> dict:
    return {"f": [{"v": _wire(v)} for v in row]}


def _handler(server: BigQueryServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _send(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
                return {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            return json.loads(raw) if raw else {}

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_GET(self) -> None:
            self._dispatch("GET")

        def _dispatch(self, method: str) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            body = self._body() if method == "POST" else {}
            server.requests.append((method, url.path, {**query, **body}))
            try:
                code, answer = self._route(method, url.path, query, body)
            except BigQueryError as error:
                code, answer = error.code, error.body()
            # (counted before it is sent: the client may read it and the test look before this thread goes on)
            server.answers.append((method, url.path, len(json.dumps(answer).encode()), len(answer.get("rows", ()))))
            self._send(code, answer)

        def _route(self, method: str, path: str, query: dict, body: dict) -> tuple[int, dict]:
            if path == "/token":
                server.tokens_issued += 1
                return 200, {"access_token": f"test-token-{server.tokens_issued}", "expires_in": 3600,
                             "token_type": "Bearer"}
            if self.headers.get("Authorization", "") == "":
                return 401, BigQueryError(401, "unauthorized", "Request is missing required authentication "
                                          "credential.").body()
            match = re.fullmatch(r"/bigquery/v2/projects/([^/]+)/(jobs|queries)(?:/([^/]+))?", path)
            if match:
                project, kind, job_id = match.groups()
                if kind == "jobs" and method == "POST":
                    return 200, self._insert(project, body)
                if kind == "jobs":
                    return 200, self._job(job_id)
                if kind == "queries" and method == "POST":
                    return 200, self._query(project, body)
                return 200, self._results(job_id, query)
            match = re.fullmatch(r"/bigquery/v2/projects/([^/]+)/datasets/([^/]+)/tables", path)
            if match:
                return 200, self._tables(*match.groups())
            return 404, BigQueryError(404, "notFound", f"Not found: {path}").body()

        def _insert(self, project: str, job: dict) -> dict:
            if server.transient_failures > 0:
                server.transient_failures -= 1
                raise BigQueryError(503, "backendError", "Error encountered during execution. Retrying may solve "
                                    "the problem.")
            config = job.get("configuration", {})
            query = config.get("query", {})
            reference = dict(job.get("jobReference") or {})
            reference.setdefault("projectId", project)
            reference.setdefault("jobId", "job_" + uuid.uuid4().hex)
            reference.setdefault("location", "US")
            result = server.run(query["query"], query.get("queryParameters", []))
            limit = query.get("maximumBytesBilled")
            if limit is not None and result["bytes"] > int(limit) and not config.get("dryRun"):
                raise BigQueryError(400, "bytesBilledLimitExceeded",
                                    f"Query exceeded limit for bytes billed: {limit}. {result['bytes']} or "
                                    "higher required.")
            state = "RUNNING" if server.slow and not config.get("dryRun") else "DONE"
            resource = {
                "kind": "bigquery#job", "id": f"{project}:{reference['jobId']}", "jobReference": reference,
                "configuration": config, "status": {"state": state},
                "statistics": {"totalBytesProcessed": str(result["bytes"]),
                               "query": {"totalBytesProcessed": str(result["bytes"]),
                                         "totalBytesBilled": "0" if config.get("dryRun") else str(result["bytes"]),
                                         "schema": result["schema"]}},
            }
            if not config.get("dryRun"):
                server.jobs[reference["jobId"]] = {"resource": resource, "result": result}
            return resource

        def _job(self, job_id: str) -> dict:
            if job_id not in server.jobs:
                raise BigQueryError(404, "notFound", f"Not found: Job {job_id}")
            return server.jobs[job_id]["resource"]

        def _results(self, job_id: str, query: dict) -> dict:
            job = self._job(job_id)
            answer = {"kind": "bigquery#getQueryResultsResponse", "jobReference": job["jobReference"]}
            if job["status"]["state"] != "DONE":
                return {**answer, "jobComplete": False}
            result = server.jobs[job_id]["result"]
            start = int(query.get("pageToken") or 0)
            size = min(int(query.get("maxResults") or server.page_size), server.page_size)
            rows = result["rows"][start:start + size]
            answer.update({"schema": result["schema"], "jobComplete": True, "totalRows": str(len(result["rows"])),
                           "totalBytesProcessed": str(result["bytes"]), "cacheHit": False})
            if "maxResults" in query and int(query["maxResults"]) == 0:
                return answer
            answer["rows"] = rows
            if start + size < len(result["rows"]):
                answer["pageToken"] = str(start + size)
            return answer

        def _query(self, project: str, request: dict) -> dict:
            job = self._insert(project, {"configuration": {"query": request}, "jobReference": {}})
            return self._results(job["jobReference"]["jobId"], {})

        def _tables(self, project: str, dataset: str) -> dict:
            names = sorted(n.split(".")[2] for n in server.tables if n.startswith(f"{project}.{dataset}."))
            if not names:
                raise BigQueryError(404, "notFound", f"Not found: Dataset {project}:{dataset}")
            return {"kind": "bigquery#tableList", "totalItems": len(names), "tables": [
                {"kind": "bigquery#table", "type": "TABLE", "id": f"{project}:{dataset}.{n}",
                 "tableReference": {"projectId": project, "datasetId": dataset, "tableId": n}} for n in names]}

    return Handler


@functools.lru_cache(maxsize=1)
def _private_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def credentials_file(folder: Path, server: BigQueryServer) -> Path:
    """A service account key file, as GOOGLE_APPLICATION_CREDENTIALS names, with a fresh RSA key
    and a ``token_uri`` on ``server``: the client signs a JWT and trades it for a token here."""
    path = folder / "service-account.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "billing-project", "private_key_id": "test-key",
        "private_key": _private_key(), "client_email": "billing-runner@billing-project.iam.gserviceaccount.com",
        "client_id": "1234567890", "token_uri": f"{server.url}/token"}))
    return path
