"""Reading a config file: safe YAML with exact numbers, bounded aliases, and every problem named
with its line and place in the file (``config/billing.yaml:42: communities[3].contrct: ...``)."""

from __future__ import annotations

import datetime as dt
import difflib
import glob
import os
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import ConfigError
from ..money import minor_unit, quantize
from .fields import _NOT_A_NUMBER, MAX_YAML_DEPTH, MAX_YAML_VALUES, _YamlInt
from .model import SQLITE_PREFIX, Config
from .sources import SOURCE_TYPES
from .terms import Contract, FlatFee, PercentFee, TieredFee

DEFAULT_CONFIG = Path("config/billing.yaml")


# --- loading --------------------------------------------------------------------------------

Location = tuple[Union[str, int], ...]


class _Refused(Exception):
    """Valid YAML that is unsafe to read further (aliases that never end or expand too far,
    nesting too deep): the line to name and the message."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line, self.message = line, message


class _Loader(yaml.SafeLoader):
    """Safe YAML whose fractional numbers become ``Decimal`` and whose integers remember their text.

    Composing also notes each alias (its name, place and the node it stands for) and refuses
    nesting deeper than ``MAX_YAML_DEPTH``, before anything recursive walks the tree.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self.aliases: list[tuple[str, yaml.Mark, yaml.Node]] = []
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            self.aliases.append((event.anchor, event.start_mark, node))
            return node
        self.depth += 1
        if self.depth > MAX_YAML_DEPTH:
            raise _Refused(event.start_mark.line + 1, f"nested more than {MAX_YAML_DEPTH} levels deep")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    number = _YamlInt(yaml.SafeLoader.construct_yaml_int(loader, node))
    number.text = node.value
    return number


_NOT_FINITE = {".inf": "Infinity", "+.inf": "Infinity", "-.inf": "-Infinity", ".nan": "NaN"}


def _decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    """A YAML float as the exact ``Decimal`` written; ``.inf`` and ``.nan`` too, for the fields to
    refuse with their place in the file."""
    text = loader.construct_scalar(node).replace("_", "")
    text = _NOT_FINITE.get(text.lower(), text)
    try:
        return Decimal(text)
    except InvalidOperation:
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not a number", node.start_mark) from None


_Loader.add_constructor("tag:yaml.org,2002:float", _decimal)
_Loader.add_constructor("tag:yaml.org,2002:int", _int)


def format_location(loc: Location) -> str:
    """``("communities", 3, "match")`` -> ``"communities[3].match"``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _refuse_endless_or_huge(root: yaml.Node, aliases: list[tuple[str, yaml.Mark, yaml.Node]]) -> None:
    """Refuse an alias inside the value it names (``&a [*a]``), and aliases that expand the file
    past ``MAX_YAML_VALUES`` values (a "billion laughs": each level repeats the one before).

    Aliases legitimately repeat contract terms, so the expanded size is what is bounded. It is
    counted once per node, without expanding anything, so a bomb is refused in linear time.
    """
    sizes: dict[int, int] = {}
    unfinished: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if finished:
            unfinished.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in _children(node))
        elif id(node) in unfinished:  # reached again from inside itself
            name, mark = next((name, mark) for name, mark, target in aliases if target is node)
            raise _Refused(mark.line + 1, f"alias *{name} is inside the value it names (&{name}), "
                                          "so it would repeat forever")
        elif id(node) not in sizes:
            unfinished.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))
    if sizes[id(root)] > MAX_YAML_VALUES:
        first = f" from *{aliases[0][0]} here on" if aliases else ""
        line = aliases[0][1].line + 1 if aliases else 1
        raise _Refused(line, f"the aliases{first} expand the file to more than {MAX_YAML_VALUES:,} values; "
                             "a billing config needs far fewer (are aliases nested in aliases?)")


_READ_AS = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"}


def _lines_and_duplicates(root: yaml.Node) -> tuple[dict[Location, int], list[tuple[Location, str]],
                                                    dict[Location, str]]:
    """Line number of every key and item, every key that appears twice in a mapping, and the
    text of each value (or key) that YAML reads as a boolean or a date, for a message that says
    to quote it."""
    lines: dict[Location, int] = {}
    duplicates: list[tuple[Location, str]] = []
    written: dict[Location, str] = {}

    def walk(node: yaml.Node, loc: Location) -> None:
        lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.ScalarNode) and node.tag in _READ_AS:
            written[loc] = node.value
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = key_node.value
                if key in seen:
                    duplicates.append((loc + (key,), f"key {key!r} appears twice"))
                seen.add(key)
                lines[loc + (key,)] = key_node.start_mark.line + 1
                if key_node.tag == "tag:yaml.org,2002:bool":  # pydantic names it by its value
                    written[loc + (yaml.SafeLoader.bool_values[key.lower()], "[key]")] = key
                walk(value_node, loc + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, loc + (index,))

    walk(root, ())
    return lines, duplicates, written


def _closest(word: str, choices: list[str]) -> str | None:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return close[0] if close else None


def _suggest(word: str, choices: list[str]) -> str:
    close = _closest(word, choices)
    return f" (did you mean {close!r}?)" if close else ""


def _model_at(loc: Location) -> type[BaseModel] | None:
    """The model class that holds the key at ``loc``, to suggest a spelling for an unknown key."""
    model: Any = Config
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(part)
        if field is None:  # a discriminated union's tag appears in the location
            model = _TAGS.get(part)
            continue
        annotation = field.annotation
        for candidate in _model_candidates(annotation):
            model = candidate
            break
        else:
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _model_candidates(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for arg in getattr(annotation, "__args__", ()):
        found.extend(_model_candidates(arg))
    return found


FEE_KINDS = {"flat": FlatFee, "percent": PercentFee, "tiered": TieredFee}
_TAGS = {**SOURCE_TYPES, **FEE_KINDS}


def _untagged(tagged: Location) -> Location:
    """``tagged`` without the source's type or the fee's kind that pydantic puts in the location
    of a discriminated union (``sources[1].gcp-bigquery.table``)."""
    return tuple(part for i, part in enumerate(tagged)
                 if not (isinstance(part, str) and part in _TAGS and i >= 2
                         and tagged[i - 2] in ("sources", "fees") and isinstance(tagged[i - 1], int)))


def _quote_hint(loc: Location, message: str, item: Any, written: dict[Location, str]) -> tuple[Location, str]:
    """Say that YAML read ``no`` (``on``, ``true``, ...) as a boolean, or a match value
    ``2022-09-01`` as a date, and how to keep the text; a key is named by its text."""
    text = written.get(loc)
    if text is None and loc[-1:] == (0,) and loc[:-1] in written:  # one value where a list is read
        loc, text = loc[:-1], written[loc[:-1]]
    if text is None:
        return loc, message
    value, matching = item["input"], "match" in loc or "scope" in loc
    if message == _NOT_A_NUMBER:
        return loc, f"YAML reads {text} as {str(value).lower()}, not a number"
    if item["type"] != "string_type" or not (isinstance(value, bool) or matching):
        return loc, message
    reads = str(value).lower() if isinstance(value, bool) else "a date"
    if loc[-1] == "[key]":
        return loc[:-2] + (text,), f"YAML reads the key {text} as {reads}; quote it ('{text}') to keep the text"
    return loc, (f"YAML reads {text} as {reads}; quote the value ('{text}') to "
                 f"{'match' if matching else 'keep'} the text")


def _pydantic_problems(error: ValidationError, written: dict[Location, str]) -> list[tuple[Location, str]]:
    """Each validation error as (location in the file, message), with the tags of discriminated
    unions left out of the location."""
    problems = []
    misspelt: set[Location] = set()  # the keys an unknown key is taken for: not also "required"
    for item in error.errors(include_url=False):
        tagged = tuple(item["loc"])
        loc = _untagged(tagged)
        if item["type"] == "extra_forbidden":
            model = _model_at(tagged)
            allowed = sorted(model.model_fields) if model else []
            message = f"unknown key {loc[-1]!r}{_suggest(str(loc[-1]), allowed)}"
            if allowed:
                message += f"; allowed here: {', '.join(allowed)}"
            close = _closest(str(loc[-1]), allowed)
            if close:
                misspelt.add(loc[:-1] + (close,))
        elif item["type"] == "missing":
            message = "field required"
        elif item["type"] == "bool_parsing":
            message = f"{item['input']!r} is neither true nor false"
        elif item["type"] == "union_tag_invalid":
            message = (f"unknown source type {item['input'].get('type')!r}; "
                       f"known: {', '.join(SOURCE_TYPES)}")
            loc = loc + ("type",)
        else:
            message = item["msg"].removeprefix("Value error, ")
            loc, message = _quote_hint(loc, message, item, written)
        problems.append((loc, message))
    return [(loc, message) for loc, message in problems if not (message == "field required" and loc in misspelt)]


def _items(data: dict, field: str) -> list[tuple[int, dict]]:
    items = data.get(field)
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)] if isinstance(items, list) else []


def _cross_checks(data: dict) -> list[tuple[Location, str]]:
    """Problems between parts of the file: duplicate ids, rules naming unknown communities.

    Runs on the raw data, so they are reported together with the per-field problems.
    """
    problems: list[tuple[Location, str]] = []
    for field in ("communities", "sources"):
        seen: set[str] = set()
        for index, item in _items(data, field):
            if not isinstance(item.get("id"), str):
                continue  # the field check reports it
            if item["id"] in seen:
                problems.append(((field, index, "id"), f"duplicate id {item['id']!r}"))
            seen.add(item["id"])
    seen = set()
    for index, item in _items(data, "shared_pools"):
        if not isinstance(item.get("id"), str):
            continue
        if item["id"] in seen:
            problems.append((("shared_pools", index, "id"), f"duplicate id {item['id']!r}"))
        seen.add(item["id"])
    # Community names are checked only when the file has its (required) list of communities:
    # without one (missing, or under a misspelt key) every name would be unknown, and the missing
    # list is a problem of its own. (Shared pools are optional: a rule naming one stays a problem.)
    communities = isinstance(data.get("communities"), list)
    ids = [str(item.get("id")) for _, item in _items(data, "communities")]
    pools = [str(item.get("id")) for _, item in _items(data, "shared_pools")]
    for index, rule in _items(data, "attribution"):
        for field, known, what in (("community", ids, "community"), ("shared_pool", pools, "shared pool")):
            name = rule.get(field)
            if isinstance(name, str) and name not in known and (communities or field != "community"):
                problems.append((("attribution", index, field), f"unknown {what} {name!r}{_suggest(name, known)}"))
    for index, pool in _items(data, "shared_pools") if communities else ():
        members = pool.get("communities") if isinstance(pool.get("communities"), list) else []
        for position, name in enumerate(members):
            if isinstance(name, str) and name not in ids:
                problems.append((("shared_pools", index, "communities", position),
                                 f"unknown community {name!r}{_suggest(name, ids)}"))
    return problems


def _term_checks(config: Config) -> list[tuple[Location, str]]:
    """Problems only a validated config can show: percentages that do not add up, contracts of
    one community that overlap or differ in currency, pools with percentages for communities
    they do not list, two exchange rates for one month and pair of currencies."""
    problems: list[tuple[Location, str]] = []
    for index, pool in enumerate(config.shared_pools):
        if pool.percentages is not None:
            total = sum(pool.percentages.values(), Decimal(0))
            if total != 100:
                problems.append((("shared_pools", index, "percentages"),
                                 f"percentages add up to {total}, not 100"))
            if set(pool.percentages) != set(pool.communities):
                problems.append((("shared_pools", index, "percentages"),
                                 "give a percentage for each of the pool's communities, and only for them"))
    seen_rates: dict[tuple[str, str, str], int] = {}
    for index, rate in enumerate(config.exchange_rates):
        key = (rate.month, rate.from_currency, rate.to_currency)
        if key in seen_rates:
            problems.append((("exchange_rates", index), f"a second {rate.from_currency} to {rate.to_currency} rate "
                             f"for {rate.month} (the first is exchange_rates[{seen_rates[key]}])"))
        seen_rates.setdefault(key, index)
    for index, community in enumerate(config.communities):
        currencies = {c.currency or community.currency for c in community.all_contracts}
        if len(currencies) > 1:
            problems.append((("communities", index, "contracts"),
                             f"contracts in {' and '.join(sorted(currencies))}; one community is billed in one "
                             "currency (set `currency` on the community)"))
        contracts = community.contracts or []
        for j, later in enumerate(contracts):
            for i, earlier in enumerate(contracts[:j]):
                starts = max(earlier.start or dt.date.min, later.start or dt.date.min)
                ends = min(earlier.end or dt.date.max, later.end or dt.date.max)
                if starts <= ends:
                    problems.append((("communities", index, "contracts", j),
                                     f"overlaps contracts[{i}] from {starts} to "
                                     f"{'open end' if ends == dt.date.max else ends}; one contract at a time"))
        placed = ([(("communities", index, "contracts", j), c) for j, c in enumerate(community.contracts)]
                  if community.contracts is not None else
                  [(("communities", index, "contract"), community.contract)] if community.contract else [])
        for where, contract in placed:
            problems += _finer_than_currency(where, contract, contract.currency or community.currency)
    return problems


def _finer_than_currency(where: Location, contract: Contract, currency: str) -> list[tuple[Location, str]]:
    """A contract's amounts (flat fees, caps, discounts, minimum, limit, prepaid funds) written
    finer than its currency's minor unit: each invoice would round them, so the contract would not
    say what is billed (``500.005`` USD, ``1000.5`` JPY). Unit prices may be finer."""
    amounts = [(("fees", n, "amount"), fee.amount) for n, fee in enumerate(contract.fees) if isinstance(fee, FlatFee)]
    amounts += [(("fees", n, "cap"), fee.cap) for n, fee in enumerate(contract.fees) if isinstance(fee, TieredFee)]
    amounts += [(("discounts", n, "amount"), discount.amount) for n, discount in enumerate(contract.discounts)]
    amounts += [(("minimum",), contract.minimum), (("cloud", "limit"), contract.cloud.limit),
                (("prepaid", "amount"), contract.prepaid.amount if contract.prepaid else None)]
    places = minor_unit(currency)
    return [(where + loc, f"{amount} is finer than {currency}'s smallest unit ({places} decimal place"
                          f"{'' if places == 1 else 's'}): an invoice would round it to {quantize(amount, currency)}; "
                          "write the amount the contract bills")
            for loc, amount in amounts if amount is not None and amount != quantize(amount, currency)]


def _resolve_paths(config: Config, base: Path) -> Config:
    def resolve(path: Path) -> Path:
        return Path(os.path.normpath(base / path))

    sources = [s.model_copy(update={field: resolve(getattr(s, field))
                                    for field in ("path", "cache") if getattr(s, field, None) is not None})
               for s in config.sources]
    metrics = resolve(config.metrics) if config.metrics else None
    ledger = config.ledger
    if ledger.url.startswith(SQLITE_PREFIX) and not ledger.url.startswith(SQLITE_PREFIX + "/") \
            and ledger.url != SQLITE_PREFIX + ":memory:":
        ledger = ledger.model_copy(update={"url": SQLITE_PREFIX + str(resolve(Path(ledger.url[len(SQLITE_PREFIX):])).absolute())})
    return config.model_copy(update={"sources": sources, "output": resolve(config.output), "metrics": metrics,
                                     "ledger": ledger})


def _path_checks(config: Config, base: Path) -> list[tuple[Location, str]]:
    """Local files the config names that are not there (for ``check-config``; a run says so too)."""
    problems: list[tuple[Location, str]] = []
    for index, source in enumerate(config.sources):
        path = getattr(source, "path", None)
        if path is not None and not (base / path).exists() and not glob.glob(str(base / path)):
            problems.append((("sources", index, "path"), f"{os.path.normpath(base / path)} does not exist"))
    if config.metrics is not None and not (base / config.metrics).parent.is_dir():
        problems.append((("metrics",), f"folder {os.path.normpath((base / config.metrics).parent)} does not exist"))
    return problems


def _parse(text: str) -> tuple[Any, dict[Location, int], list[tuple[Location, str]], dict[Location, str]]:
    """The file's data (``None`` if empty), the line of each place, the keys given twice, and the
    text of values YAML reads as booleans or dates. Raises ``yaml.YAMLError`` or ``_Refused``."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, {}, [], {}
        _refuse_endless_or_huge(root, loader.aliases)
        lines, duplicates, written = _lines_and_duplicates(root)  # before merge keys (<<) are flattened
        return loader.construct_document(root), lines, duplicates, written
    finally:
        loader.dispose()


def load_config(path: Path | str = DEFAULT_CONFIG, check_paths: bool = False) -> Config:
    """Read and validate a config file; raise ``ConfigError`` listing every problem found.

    With ``check_paths``, local source files and the metrics folder must exist too.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found (give one with --config PATH)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None

    try:
        data, lines, problems, written = _parse(text)
    except yaml.reader.ReaderError as exc:  # a control character; it has a position, not a mark
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(f"{path}:{line}: not valid YAML: {exc.reason} (U+{exc.character:04X})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    except _Refused as refused:
        raise ConfigError(f"{path}:{refused.line}: {refused.message}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with organisation, sources, communities, attribution")

    config = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems += _pydantic_problems(exc, written)
    problems += _cross_checks(data)
    if config is not None:
        problems += _term_checks(config)
        if check_paths:
            problems += _path_checks(config, path.parent)
    problems.sort(key=lambda problem: _line(lines, problem[0]))
    if problems:
        raise ConfigError(
            f"{path}: {len(problems)} problem{'s' if len(problems) > 1 else ''}",
            tuple(_place(path, lines, loc, message) for loc, message in problems))
    return _resolve_paths(config, path.parent)


def _line(lines: dict[Location, int], loc: Location) -> int:
    """Line of ``loc``, or of its nearest enclosing part that the file has."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 0


def _place(path: Path, lines: dict[Location, int], loc: Location, message: str) -> str:
    """``config/billing.yaml:42: communities[3].contract.fees: field required``."""
    return f"{path}:{_line(lines, loc)}: {format_location(loc)}: {message}"

